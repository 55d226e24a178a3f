"""The house rules of DESIGN.md, checked on the source rather than trusted.

- ``tui/`` talks to the server only over HTTP: it imports nothing from ``proxy/``.
- ``nexus/`` (the shared core and the CLI) has no module-level import of Quart, Textual or
  Hypercorn, so ``nexus --help``, ``nexus export --format json`` and the headless paths never pay
  for (or break on) a web or UI framework.
- ``proxy/`` never imports Textual.
- Importing the core for real leaves those frameworks out of ``sys.modules``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAMEWORKS = ("quart", "textual", "textual_plotext", "hypercorn")


def _py_files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no files under {package}/"
    return files


def _imported_modules(tree: ast.AST, top_level_only: bool) -> list[tuple[str, int]]:
    """Module names imported, with line numbers. ``top_level_only`` skips function/class bodies."""
    nodes: list[ast.AST]
    if top_level_only:
        nodes = []
        stack = list(ast.iter_child_nodes(tree))
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                continue
            nodes.append(node)
            stack.extend(ast.iter_child_nodes(node))
    else:
        nodes = list(ast.walk(tree))
    out: list[tuple[str, int]] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
    return out


def _root(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("path", _py_files("tui"), ids=lambda p: str(p.relative_to(ROOT)))
def test_tui_never_imports_proxy(path: Path) -> None:
    bad = [(m, line) for m, line in _imported_modules(ast.parse(path.read_text()), top_level_only=False)
           if _root(m) == "proxy"]
    assert not bad, f"{path.relative_to(ROOT)} imports proxy/: {bad}"


@pytest.mark.parametrize("path", _py_files("nexus"), ids=lambda p: str(p.relative_to(ROOT)))
def test_nexus_has_no_module_level_framework_import(path: Path) -> None:
    bad = [(m, line) for m, line in _imported_modules(ast.parse(path.read_text()), top_level_only=True)
           if _root(m) in FRAMEWORKS or _root(m) in ("tui", "proxy")]
    assert not bad, f"{path.relative_to(ROOT)} imports at module level: {bad}"


@pytest.mark.parametrize("path", _py_files("proxy"), ids=lambda p: str(p.relative_to(ROOT)))
def test_proxy_never_imports_textual(path: Path) -> None:
    bad = [(m, line) for m, line in _imported_modules(ast.parse(path.read_text()), top_level_only=False)
           if _root(m) in ("textual", "textual_plotext", "tui")]
    assert not bad, f"{path.relative_to(ROOT)} imports the UI: {bad}"


def test_importing_the_core_loads_no_framework() -> None:
    modules = sorted(
        "nexus." + p.relative_to(ROOT / "nexus").with_suffix("").as_posix().replace("/", ".")
        for p in _py_files("nexus") if p.name != "__init__.py" and p.name != "__main__.py"
    )
    code = (
        "import importlib, json, sys\n"
        f"for m in {['nexus', *modules, 'tui.client', 'tui.fmt']!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(FRAMEWORKS)!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_cli_help_loads_no_framework() -> None:
    code = ("import sys, contextlib, io\nimport nexus.cli\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    nexus.cli.main(['--help'])\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {list(FRAMEWORKS)!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
