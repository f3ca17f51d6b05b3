"""The package follows the data flow; this test keeps it that way (imports read with ``ast``, nothing run).

    signals -> render -> instruct -> model -> train | evaluate -> serve

A stage may import itself, any stage before it, and the shared helpers at the top of the package
(``errors``, ``io``, ``outputs``, ``shards``); never a later stage, and never the orchestrators
(``cli*``, ``demo``), which may import every stage. ``train`` and ``evaluate`` are siblings: both
come after ``model`` and neither may import the other, with one named exception below. Every
import counts, including those inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "ecgvlm"
STAGES = {"signals": 0, "render": 1, "instruct": 2, "model": 3, "train": 4, "evaluate": 4, "serve": 5}
SHARED = {"errors", "io", "outputs", "shards", "__init__"}

# (importing module, imported stage): why the edge is allowed although it runs against the flow.
EXCEPTIONS = {
    ("ecgvlm.train.sweep", "evaluate"): (
        "the ablation sweep trains each grid point and then scores it: it orchestrates train and "
        "evaluate like the demo does; evaluate never imports train, so there is no cycle"
    ),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PKG.rglob("*.py")}


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Every ``ecgvlm`` module ``path`` imports (absolute or relative, top level or in a function).

    ``from pkg import sub`` counts as importing the module ``pkg.sub`` when there is one (the
    package itself is imported on the way, as it is for any of its modules), else ``pkg``.
    """
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if sub in known else module)
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (names that are not modules are dropped)."""
    files = all_modules()
    return {name: imports_of(path, set(files)) for name, path in files.items()}


def stage_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in STAGES else None


def top_of(module: str) -> str | None:
    """The top-level name of a module outside the stages (``cli``, ``demo``, ``io``, ...)."""
    parts = module.split(".")
    return parts[1] if len(parts) == 2 and parts[1] not in STAGES else "__init__" if len(parts) == 1 else None


def test_no_stage_imports_against_the_flow():
    bad, used = [], set()
    for module, targets in sorted(graph().items()):
        stage = stage_of(module)
        if stage is None:
            continue
        for target in sorted(targets):
            other = stage_of(target)
            if other is None:
                if top_of(target) not in SHARED:
                    bad.append(f"{module} -> {target} (an orchestrator)")
                continue
            if other == stage or STAGES[other] < STAGES[stage]:
                continue
            if (module, other) in EXCEPTIONS:
                used.add((module, other))
                continue
            bad.append(f"{module} -> {target} ({stage} may not import {other})")
    assert not bad, "imports against signals -> render -> instruct -> model -> train|evaluate -> serve:\n" + (
        "\n".join(bad)
    )
    assert used == set(EXCEPTIONS), f"exceptions no longer needed: {sorted(set(EXCEPTIONS) - used)}"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_cycle_between_stage_packages():
    edges: dict[str, set[str]] = {}
    for module, targets in graph().items():
        stage = stage_of(module)
        for target in targets:
            other = stage_of(target)
            if stage and other and other != stage:
                edges.setdefault(stage, set()).add(other)
    assert not _cycles(edges), f"stage packages import each other: {_cycles(edges)}"


def test_no_cycle_between_modules():
    """Two modules that import each other (even lazily) are one job split in two, or two jobs tangled."""
    assert not _cycles(graph()), f"modules import each other: {_cycles(graph())}"


def test_the_checker_sees_what_it_should(tmp_path):
    """The reader finds relative, nested and lazy imports, and the cycle finder finds a cycle."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    found = imports_of(PKG / "serve" / "interpreter.py", set(all_modules()))
    assert "ecgvlm.serve.loading" in found  # imported inside a method
    assert "ecgvlm.render.augment" in graph()["ecgvlm.render.page"]  # from ecgvlm.render import augment
    assert {"ecgvlm.model.chat", "ecgvlm.train.data"} <= graph()["ecgvlm.train.recipe"]
