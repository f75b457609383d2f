"""The scheduling core stays pure: standard library and dateutil only, and no clock."""

import ast
from pathlib import Path

import slotwise.scheduling

CORE_DIR = Path(slotwise.scheduling.__file__).parent
ALLOWED_MODULES = {
    "__future__",
    "bisect",
    "collections",
    "dataclasses",
    "datetime",
    "dateutil",
    "enum",
    "fractions",  # round robin's exact shares (bookings per unit of weight)
    "functools",
    "itertools",
    "operator",
    "slotwise",
    "typing",
    "uuid",  # ids of providers and services, as plain values
    "zoneinfo",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time_ns", "perf_counter", "monotonic"}


def core_trees() -> list[tuple[str, ast.Module]]:
    paths = sorted(CORE_DIR.glob("*.py"))
    assert paths
    return [(path.name, ast.parse(path.read_text(), filename=str(path))) for path in paths]


def test_core_imports_only_allowed_modules() -> None:
    for name, tree in core_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] in ALLOWED_MODULES, f"{name} imports {module}"
                if module.startswith("slotwise"):
                    assert module.startswith("slotwise.scheduling"), f"{name} imports {module}"


def test_core_never_reads_the_clock() -> None:
    for name, tree in core_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                assert node.attr not in CLOCK_CALLS, f"{name} calls .{node.attr}"
