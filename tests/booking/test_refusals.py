"""Every refusal a check against a provider's terms can give is classified, in exactly one
of ``booking.terms``' two lists: a refusal from (possibly stale) kept terms is confirmed
against fresh ones before it is given; one found by the booking's own transaction is given
as it is. A refusal added to a check and classified in neither fails here.

The checks are found by reading the code: every function that takes a ``Terms`` (the
checks of booking, rescheduling and the booking writer, wherever they are), the methods
of ``Terms`` and ``terms.read``, and every Slotwise function they call, however deep.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import slotwise
from slotwise.booking import terms
from slotwise.errors import AppError

Function = tuple[types.ModuleType, ast.FunctionDef | ast.AsyncFunctionDef]


def _modules() -> Iterator[types.ModuleType]:
    for info in pkgutil.walk_packages(slotwise.__path__, "slotwise."):
        if ".migrations" not in info.name:
            yield importlib.import_module(info.name)


def _parsed(module: types.ModuleType) -> ast.Module:
    assert module.__file__ is not None
    return ast.parse(Path(module.__file__).read_text(encoding="utf-8"))


def _takes_terms(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    arguments = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
    return any(
        argument.annotation is not None
        and ast.unparse(argument.annotation).split(".")[-1].strip("'\"") == "Terms"
        for argument in arguments
    )


def _function_node(function: Any) -> Function | None:
    """A Slotwise function's module and syntax tree (None for anything else)."""
    function = inspect.unwrap(function)
    module = sys.modules.get(getattr(function, "__module__", "") or "")
    if module is None or not module.__name__.startswith("slotwise."):
        return None
    if not inspect.isfunction(function):
        return None
    try:
        source = inspect.getsource(function)
    except OSError:  # made at run time (a dataclass's __init__): no checks of ours
        return None
    tree = ast.parse(textwrap.dedent(source))
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    return module, node


def _resolve(module: types.ModuleType, expression: ast.expr) -> Any:
    """What a name or a dotted name means in a module's namespace (None if not there)."""
    if isinstance(expression, ast.Name):
        return vars(module).get(expression.id)
    if isinstance(expression, ast.Attribute):
        owner = _resolve(module, expression.value)
        return None if owner is None else getattr(owner, expression.attr, None)
    return None


def _roots() -> list[Function]:
    roots: list[Function] = []
    for module in _modules():
        for node in ast.walk(_parsed(module)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _takes_terms(node):
                roots.append((module, node))
    for function in [terms.read, *vars(terms.Terms).values()]:
        found = _function_node(function) if inspect.isfunction(function) else None
        if found is not None:
            roots.append(found)
    return roots


def refusals_of_checks() -> set[type[AppError]]:
    """Every AppError raised by a check against terms, or by what it calls."""
    refusals: set[type[AppError]] = set()
    seen: set[tuple[str, int, str]] = set()
    pending = _roots()
    while pending:
        module, node = pending.pop()
        key = (module.__name__, node.lineno, node.name)
        if key in seen:
            continue
        seen.add(key)
        for inner in ast.walk(node):
            if isinstance(inner, ast.Raise) and inner.exc is not None:
                raised = inner.exc.func if isinstance(inner.exc, ast.Call) else inner.exc
                error = _resolve(module, raised)
                if inspect.isclass(error) and issubclass(error, AppError):
                    refusals.add(error)
            elif isinstance(inner, ast.Call):
                called = _function_node(_resolve(module, inner.func))
                if called is not None:
                    pending.append(called)
    return refusals


def test_every_refusal_of_a_check_against_terms_is_classified() -> None:
    raised = refusals_of_checks()
    from_terms = set(terms.REFUSALS_FROM_TERMS)
    from_transaction = set(terms.REFUSALS_FROM_THE_TRANSACTION)
    assert not from_terms & from_transaction
    unclassified = raised - from_terms - from_transaction
    assert not unclassified, f"classify in booking/terms.py: {sorted(map(str, unclassified))}"
    assert from_terms | from_transaction <= raised  # no list names a refusal no check gives


def test_the_reading_finds_refusals_through_calls() -> None:
    """A negative control: the refusals of checks reached only through calls are found."""
    raised = refusals_of_checks()
    names = {error.__name__ for error in raised}
    # rules.check_offered (called by create.prepare), integrity.raise_for_constraint
    # (called by create.write), providers' ProviderNotFound (raised by create.prepare).
    assert {"OutsideAvailability", "SlotUnavailable", "ProviderNotFound"} <= names
