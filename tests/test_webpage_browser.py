"""The web page in a real headless Chromium (Debian's package) driven by Playwright.

Skipped when /usr/bin/chromium or the playwright package is missing, unless ECGVLM_REQUIRE_ALL=1.
The screenshot goes to the pytest tmp dir and, when ECGVLM_SCREENSHOT_DIR is set, there too.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ecgvlm.serve import examples
from ecgvlm.serve.app import ServeConfig, create_app
from ecgvlm.serve.interpreter import ECGInterpreter, InterpretConfig
from ecgvlm.serve.local import running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _need_browser():
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing.append("the playwright package (pip install playwright; no browser download needed)")
        sync_playwright = None
    if missing:
        if os.environ.get("ECGVLM_REQUIRE_ALL") == "1":
            pytest.fail("browser test needs " + " and ".join(missing))
        pytest.skip("browser test needs " + " and ".join(missing))
    return sync_playwright


@pytest.fixture(scope="module")
def server_url(tmp_path_factory):
    from ecgvlm.model.tiny import build_tiny

    out = tmp_path_factory.getbasetemp() / "serve-tiny"  # shared by the serve/interpret test files
    if not (out / "ecgvlm_tiny.json").is_file():  # written last by build_tiny
        build_tiny(out, seed=0)
    config = InterpretConfig(codes=("SR", "AFIB", "IMI", "LVH", "CLBBB"), max_new_tokens=24)
    interp = ECGInterpreter.from_pretrained(out, device="cpu", config=config)
    with running_server(create_app(interp, ServeConfig())) as url:
        yield url


def _launch(p, tmp_path: Path):
    return p.chromium.launch_persistent_context(
        str(tmp_path / "chromium-profile"),  # a fresh profile every run
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1360, "height": 1000},
    )


def _save_screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=True)
    extra = os.environ.get("ECGVLM_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(extra) / name)
    return shot


@pytest.mark.slow
def test_upload_on_the_page_shows_the_report(server_url, tmp_path):
    sync_playwright = _need_browser()
    image = tmp_path / "my-ecg.png"
    image.write_bytes(examples.read())
    with sync_playwright() as p:
        ctx = _launch(p, tmp_path)
        try:
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server_url)
            page.wait_for_selector("#model-name:not(:text('connecting'))")
            assert page.locator(".example-btn").count() >= 1
            page.set_input_files("#file-input", str(image))
            page.wait_for_selector("#output:not([hidden])", timeout=60_000)
            assert page.locator("#preview-img").is_visible()
            report = page.locator("#report").inner_text()
            assert report.strip()
            assert page.locator("#superclasses .bar-row").count() == 5
            widths = page.eval_on_selector_all("#superclasses .bar > i", "els => els.map(e => e.style.width)")
            assert all(w.endswith("%") for w in widths)
            page.check("#show-all")
            assert page.locator("#statements tr").count() == 5
            shot = _save_screenshot(page, tmp_path, "webpage-upload.png")
            assert shot.stat().st_size > 10_000
            # An error from the API shows as a message on the page, not a broken page.
            bad = tmp_path / "notes.png"
            bad.write_text("not an image")
            page.set_input_files("#file-input", str(bad))
            page.wait_for_selector("#error:not([hidden])")
            assert "not a PNG, JPEG or WebP" in page.locator("#error").inner_text()
            # Picking a bundled example works the same way.
            page.locator(".example-btn").first.click()
            page.wait_for_selector("#output:not([hidden])", timeout=60_000)
            assert page.locator("#error").is_hidden()
            assert not errors, errors
        finally:
            ctx.close()


@pytest.mark.slow
def test_page_says_which_questions_the_model_was_not_trained_for(tmp_path, tmp_path_factory):
    """An adapter fine-tuned on superclass + report (the demo's): the page explains the empty sections."""
    import json

    from ecgvlm.model.load import load_model
    from ecgvlm.model.tuning import apply_tuning

    sync_playwright = _need_browser()
    base = tmp_path_factory.getbasetemp() / "serve-tiny"
    if not (base / "ecgvlm_tiny.json").is_file():
        from ecgvlm.model.tiny import build_tiny

        build_tiny(base, seed=0)
    adapter = tmp_path / "adapter"
    apply_tuning(load_model(base, device="cpu"), "paper").save_pretrained(adapter)
    (adapter / "train_summary.json").write_text(json.dumps({"tasks": {"report": 8, "superclass": 8}}))
    config = InterpretConfig(codes=("SR", "IMI"), max_new_tokens=8)
    interp = ECGInterpreter.from_pretrained(base, adapter=adapter, device="cpu", config=config)
    with running_server(create_app(interp, ServeConfig())) as url, sync_playwright() as p:
        ctx = _launch(p, tmp_path)
        try:
            page = ctx.new_page()
            page.goto(url)
            page.wait_for_selector("#model-name:not(:text('connecting'))")
            page.locator(".example-btn").first.click()
            page.wait_for_selector("#output:not([hidden])", timeout=60_000)
            assert page.locator("#superclasses .bar-row").count() == 5
            assert page.locator("#statements tr").count() == 0 and page.locator("#show-all").is_hidden()
            assert "not fine-tuned on yes/no questions" in page.locator("#no-statements").inner_text()
            assert "not fine-tuned on measurement questions" in page.locator("#measurements").inner_text()
            assert page.locator("#report").inner_text().strip()
            _save_screenshot(page, tmp_path, "webpage-not-asked.png")
        finally:
            ctx.close()
