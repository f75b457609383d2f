"""Settings are passed in: only the entry points read the process's settings
(``config.get_settings``); everything else receives the values it uses from its caller."""

from __future__ import annotations

import ast
from pathlib import Path

import slotwise

SOURCE = Path(slotwise.__file__).parent


def _callers_of(name: str) -> set[tuple[str, str]]:
    """(file, innermost function) of every call of ``name`` in the source."""
    found: set[tuple[str, str]] = set()

    def visit(node: ast.AST, where: str, function: str) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            function = node.name
        if isinstance(node, ast.Call):
            called = node.func
            if (isinstance(called, ast.Name) and called.id == name) or (
                isinstance(called, ast.Attribute) and called.attr == name
            ):
                found.add((where, function))
        for child in ast.iter_child_nodes(node):
            visit(child, where, function)

    for path in sorted(SOURCE.rglob("*.py")):
        visit(ast.parse(path.read_text()), str(path.relative_to(SOURCE)), "<module>")
    return found


def test_only_the_entry_points_read_the_global_settings() -> None:
    """The command line and uvicorn's factory read them where a process starts; the app
    factory and all below it are given them."""
    readers = _callers_of("get_settings")
    assert readers, "the probe finds the entry points' reads"
    assert {
        (where, function)
        for where, function in readers
        if where != "cli.py" and (where, function) != ("main.py", "app_factory")
    } == set()
