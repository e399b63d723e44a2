"""Data flows one way (STYLE.md): only the front end (parse, lower) sees Lark; the
core imports nothing from the CLI, lint, fmt, testing, simulator or runtime; and
nothing imports the CLI."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parent.parent
CORE = ["ast", "check", "compile", "decision", "errors", "interpret", "jsontext", "loader", "lower", "parse", "policies", "request", "values"]
OUTER = ("nhipl.cli", "nhipl.lint", "nhipl.fmt", "nhipl.testing", "nhipl.simulator", "nhipl.runtime")


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    package = "nhipl"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package if node.level == 1 else package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module or "")
    return found


def _python_files():
    for folder in ["nhipl", "simulator"]:
        yield from sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("name", CORE)
def test_core_imports_nothing_outer(name):
    imports = _imports(ROOT / "nhipl" / f"{name}.py")
    bad = sorted(i for i in imports if i.startswith(OUTER))
    assert not bad, f"nhipl/{name}.py imports {bad}"


def test_only_the_front_end_imports_lark():
    users = sorted(
        str(p.relative_to(ROOT)) for p in _python_files() if any(i == "lark" or i.startswith("lark.") for i in _imports(p))
    )
    assert users == ["nhipl/lower.py", "nhipl/parse.py"]


def test_nothing_imports_the_cli():
    for path in _python_files():
        if "cli" in path.relative_to(ROOT).parts or path.name == "__main__.py":
            continue
        imports = _imports(path)
        assert not any(i.startswith("nhipl.cli") or i.endswith(".cli") for i in imports), path


def test_no_utils_module():
    assert not [p for p in _python_files() if p.stem in ("utils", "helpers", "misc")]
