"""The house rules (docs/architecture.md), checked on the source rather than trusted.

The layer contracts themselves are ``import-linter``'s (``[tool.importlinter]`` in pyproject.toml,
also run by ``.ci/run``); these tests make ``pytest`` alone enforce them too, and check what a
static import graph cannot see: what really lands in ``sys.modules`` at run time, and that no
project module is loaded through ``import_module`` behind the linter's back.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRAMEWORKS = ("quart", "textual", "textual_plotext", "hypercorn", "aiohttp")


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
    """What import-linter cannot see: the CLI may import the server and the monitor only lazily,
    inside the command that runs them, so ``nexus --help`` stays instant."""
    bad = [(m, line) for m, line in _imported_modules(ast.parse(path.read_text()), top_level_only=True)
           if _root(m) in ("quart", "textual", "textual_plotext", "hypercorn", "tui", "proxy")]
    assert not bad, f"{path.relative_to(ROOT)} imports at module level: {bad}"


@pytest.mark.parametrize("path", _py_files("proxy"), ids=lambda p: str(p.relative_to(ROOT)))
def test_proxy_never_imports_textual(path: Path) -> None:
    bad = [(m, line) for m, line in _imported_modules(ast.parse(path.read_text()), top_level_only=False)
           if _root(m) in ("textual", "textual_plotext", "tui")]
    assert not bad, f"{path.relative_to(ROOT)} imports the UI: {bad}"


@pytest.mark.process
@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_import_linter_contracts_are_kept() -> None:
    out = subprocess.run(["lint-imports", "--no-cache"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def _guarded_project_imports(tree: ast.AST) -> list[int]:
    """Lines of ``try: import <our module> / except ImportError`` (a partial install cannot exist)."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Try):
            continue
        catches = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
        if not any("ImportError" in c or "ModuleNotFoundError" in c for c in catches):
            continue
        for inner in node.body:
            for imp in ast.walk(inner):
                names = [a.name for a in imp.names] if isinstance(imp, ast.Import) else (
                    [imp.module or ""] if isinstance(imp, ast.ImportFrom) else [])
                if any(n.split(".")[0] in ("nexus", "proxy", "tui") for n in names):
                    lines.append(imp.lineno)
    return lines


def test_no_hidden_wiring() -> None:
    """Plain imports only: ``import_module`` is the CLI's lazy command loading, nothing else, and
    no project module is imported under an ``ImportError`` guard."""
    bad = []
    for package in ("nexus", "proxy", "tui"):
        for path in _py_files(package):
            rel = path.relative_to(ROOT).as_posix()
            text = path.read_text()
            for n, line in enumerate(text.splitlines(), 1):
                if re.search(r"\bimport_module\b|\b_optional\(", line) and rel != "nexus/cli/__init__.py":
                    bad.append(f"{rel}:{n}: {line.strip()}")
            bad += [f"{rel}:{n}: import under an ImportError guard" for n in _guarded_project_imports(ast.parse(text))]
    assert not bad, "\n".join(bad)


def test_largest_module_is_small() -> None:
    sizes = {p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
             for package in ("nexus", "proxy", "tui") for p in _py_files(package)}
    biggest = max(sizes, key=sizes.__getitem__)
    assert sizes[biggest] < 450, f"{biggest} has {sizes[biggest]} lines"


@pytest.mark.process
def test_importing_the_core_loads_no_framework() -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for package in ("nexus/core", "nexus/pricing", "nexus/store")
        for p in _py_files(package)
    )
    code = (
        "import importlib, json, sys\n"
        f"for m in {[*modules, 'tui.api.client', 'tui.api.stream', 'tui.fmt', 'tui.export']!r}:\n"
        "    importlib.import_module(m)\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(FRAMEWORKS)!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.mark.process
def test_cli_help_loads_no_framework() -> None:
    code = ("import sys, contextlib, io\nimport nexus.cli\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    nexus.cli.main(['--help'])\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {list(FRAMEWORKS)!r}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
