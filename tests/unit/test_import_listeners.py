"""Importing Slotwise registers no SQLAlchemy Session listener: listeners are registered by
whoever builds the sessions (the app factory, ``db.Database``), so that importing a module,
in a test, a migration or a script, changes the behaviour of nobody's sessions."""

from __future__ import annotations

import json
import subprocess
import sys

# In a fresh interpreter: every module of Slotwise imported (but the migrations, which run
# Alembic on import), then every function they define looked up among Session's listeners.
PROBE = """
import importlib, inspect, json, pkgutil
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionEvents
import slotwise

modules = [
    importlib.import_module(found.name)
    for found in pkgutil.walk_packages(slotwise.__path__, "slotwise.")
    if not found.name.startswith("slotwise.migrations")
]
functions = {
    id(value): value
    for module in modules
    for value in vars(module).values()
    if inspect.isfunction(value)
}
names = [
    name for name, hook in vars(SessionEvents).items()
    if inspect.isfunction(hook) and not name.startswith("_")
]
print(json.dumps(sorted(
    f"{fn.__module__}.{fn.__qualname__} on {name}"
    for fn in functions.values()
    for name in names
    if event.contains(Session, name, fn)
)))
"""


def test_importing_slotwise_registers_no_session_listener() -> None:
    run = subprocess.run(  # noqa: S603 - this interpreter, a fixed script
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(run.stdout.strip().splitlines()[-1]) == []
