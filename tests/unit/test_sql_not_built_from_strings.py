"""No module builds SQL by formatting strings: statements are SQLAlchemy constructs, or
``text()`` of a string written out in full with bound ``:parameters``. A table or column
name pasted into SQL at run time is one edit away from pasting input; a fixed text is not.

Read from the source (the AST), so a statement built on a path the tests never run is
caught as well. Migrations are left out: they run once, offline, with their own constants.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import slotwise

SOURCE_DIR = Path(slotwise.__file__).parent
MODULES = sorted(
    path.relative_to(SOURCE_DIR).as_posix()
    for path in SOURCE_DIR.rglob("*.py")
    if "migrations" not in path.relative_to(SOURCE_DIR).parts
)

# Modules that still build SQL from strings, each until the rewrite named beside it. An
# entry is an expected failure, strictly: once its module is clean the test of that module
# fails ("XPASS(strict)") until the entry is deleted.
KNOWN: dict[str, str] = {}

# Upper-case SQL, as this code base writes it, in a string's literal parts.
SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|WITH|FROM|WHERE|VALUES|PRAGMA|CAST)\b"
)
# Calls that run or wrap SQL text: their text must not be built at run time.
SQL_TEXT_CALLS = {"text", "exec_driver_sql", "execute", "executemany", "executescript"}


@dataclass(frozen=True)
class Finding:
    line: int
    why: str


def test_every_module_is_read() -> None:
    assert "db/bulk.py" in MODULES
    assert not any(module.startswith("migrations/") for module in MODULES)
    assert set(KNOWN) <= set(MODULES), "an entry of KNOWN names no module"


@pytest.mark.parametrize(
    "module",
    [
        pytest.param(
            module,
            marks=pytest.mark.xfail(strict=True, reason=KNOWN[module]) if module in KNOWN else (),
        )
        for module in MODULES
    ],
)
def test_module_builds_no_sql_from_strings(module: str) -> None:
    path = SOURCE_DIR / module
    findings = sql_built_from_strings(path.read_text(encoding="utf-8"))
    assert not findings, "\n".join(f"{module}:{f.line}: {f.why}" for f in findings)


def sql_built_from_strings(source: str) -> list[Finding]:
    """Where this module builds SQL from strings: an f-string, ``.format`` or ``%`` whose
    literal text reads as SQL; a ``text()`` of anything but a string written out in full
    (a literal, or a name only ever given literals); an ``execute``-like call of an
    f-string or of a name given one."""
    tree = ast.parse(source)
    assigned = _assignments(tree)
    findings: list[Finding] = []
    for node in ast.walk(tree):
        literal = _formatted_literal(node)
        if literal is not None and SQL_WORDS.search(literal):
            findings.append(Finding(node.lineno, f"SQL formatted from strings: {literal!r}"))
        if not isinstance(node, ast.Call) or not node.args:
            continue
        name = _called_name(node.func)
        argument = node.args[0]
        if name == "text" and not _static(argument, assigned):
            findings.append(Finding(node.lineno, "text() of a string built at run time"))
        elif name in SQL_TEXT_CALLS and _formatted(argument, assigned):
            findings.append(Finding(node.lineno, f"{name}() of a formatted string"))
    return findings


def _assignments(tree: ast.Module) -> dict[str, list[ast.expr]]:
    """Every value each plain name is given anywhere in the module."""
    values: dict[str, list[ast.expr]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value is not None:
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name):
                values.setdefault(target.id, []).append(value)
    return values


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _static(node: ast.expr, assigned: dict[str, list[ast.expr]], depth: int = 0) -> bool:
    """A string fixed in the source: a literal, literals joined with +, or a name only ever
    given such strings."""
    if depth > 10:
        return False
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _static(node.left, assigned, depth + 1) and _static(node.right, assigned, depth + 1)
    if isinstance(node, ast.Name) and node.id in assigned:
        return all(_static(value, assigned, depth + 1) for value in assigned[node.id])
    return False


def _formatted(node: ast.expr, assigned: dict[str, list[ast.expr]]) -> bool:
    """An f-string, ``.format`` or ``%`` of a string, or a name given one."""
    if _formatted_literal(node) is not None:
        return True
    if isinstance(node, ast.Name):
        return any(_formatted_literal(value) is not None for value in assigned.get(node.id, []))
    return False


def _formatted_literal(node: ast.AST) -> str | None:
    """The literal text of a string formatted at run time (``{}`` for what is filled in),
    or None if ``node`` is not one."""
    if isinstance(node, ast.JoinedStr):
        return "".join(
            part.value if isinstance(part, ast.Constant) else "{}" for part in node.values
        )
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
        and isinstance(node.func.value, ast.Constant)
        and isinstance(node.func.value.value, str)
    ):
        return node.func.value.value
    if (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Mod)
        and isinstance(node.left, ast.Constant)
        and isinstance(node.left.value, str)
    ):
        return node.left.value
    return None


# The checker itself, on what it must find and what it must let pass.

FOUND = {
    "f-string in text()": 'text(f"SELECT * FROM {table}")',
    "name given an f-string": 'query = f"DELETE FROM {table}"\ntext(query)',
    "fragment assembled": 'parts = [f"INSERT INTO {name} ({columns})", "SELECT 1"]',
    "CTE fragment": 'ctes.append(f"t{n} AS (INSERT INTO x SELECT * FROM unnest({arrays}))")',
    "format": 'sql = "UPDATE {} SET x = 1".format(table)',
    "percent": 'sql = "SELECT * FROM %s" % table',
    "join in text()": 'text(", ".join(parts))',
    "parameter in text()": "def run(query):\n    return text(query)",
    "pragma": 'cursor.execute(f"PRAGMA foreign_keys={flag}")',
    "the old db.insert_rows": (
        "inserts = [\n"
        "    f'INSERT INTO \"{name}\" ({part.columns}) SELECT * FROM unnest({part.arrays})'\n"
        "    for name, part in shape\n"
        "]\n"
        'with_clause = ", ".join(f"t{number} AS ({part})" for number, part in enumerate(first))\n'
        'return text(f"WITH {with_clause} {last}" if first else last)\n'
    ),
}

PASSED = {
    "literal text": 'text("SELECT 1")',
    "constant name": '_LOCKS = (\n    "SELECT count(*)"\n    " FROM x"\n)\nq = text(_LOCKS)',
    "constants added": 'A = "SELECT 1"\nB = A + " WHERE true"\ntext(B)',
    "messages": 'raise TypeError(f"no array type for {column}")\nlog(f"with {n} rows")',
    "parameter names": 'name = f"{prefix}_{key}"',
    "constructs": "select(User).where(User.id == bindparam('id'))\nsession.execute(query)",
    "a pragma written out": 'cursor.execute("PRAGMA journal_mode=WAL")',
}


@pytest.mark.parametrize("source", FOUND.values(), ids=FOUND.keys())
def test_the_check_finds_sql_built_from_strings(source: str) -> None:
    assert sql_built_from_strings(source)


@pytest.mark.parametrize("source", PASSED.values(), ids=PASSED.keys())
def test_the_check_lets_fixed_sql_and_plain_strings_pass(source: str) -> None:
    assert sql_built_from_strings(source) == []
