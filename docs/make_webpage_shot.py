"""Screenshot of the web page serving a model: docs/webpage-demo-model.png.

    ecgvlm demo && python docs/make_webpage_shot.py            # the demo's model, a HYP test page

Starts the real app on loopback with the default model (runs/demo/model), uploads one page in
Debian's headless Chromium (Playwright, no browser download) and saves the full page.
"""

from __future__ import annotations

import argparse
import tempfile

from playwright.sync_api import sync_playwright

from ecgvlm.serve.app import ServeConfig, create_app
from ecgvlm.serve.interpreter import ECGInterpreter
from ecgvlm.serve.local import running_server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--image", default="runs/demo/data/images/synth-0-000011.png")
    parser.add_argument("--out", default="docs/webpage-demo-model.png")
    args = parser.parse_args()
    interp = ECGInterpreter.from_pretrained()
    with (
        running_server(create_app(interp, ServeConfig())) as url,
        sync_playwright() as p,
        tempfile.TemporaryDirectory() as profile,
    ):
        ctx = p.chromium.launch_persistent_context(
            profile,
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu"],
            viewport={"width": 1360, "height": 1000},
        )
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_selector("#model-name:not(:text('connecting'))")
        page.set_input_files("#file-input", args.image)
        page.wait_for_selector("#output:not([hidden])", timeout=60_000)
        page.screenshot(path=args.out, full_page=True)
        ctx.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
