"""The two test tiers, as a pytest plugin (``tests/conftest.py`` loads it).

``make test`` runs the fast tier, ``pytest -m "not full"``; ``make test-all`` (CI) runs every test. A test is
in the full tier when it carries one of FULL_TIER_MARKS, and it gets those marks from what it uses, at
collection, so that none can be forgotten:

- a fixture in FIXTURE_MARKS (the real Slurm, the LSF clone, the fake LSF, a browser), directly or through
  another fixture;
- a name in CALL_MARKS, used by the test, by a fixture it uses, or by a helper in ``tests/`` that either
  calls: ``run_py`` or the file ``"run.py"`` (python run.py in a subprocess: training, or at least a new
  Python with Hydra and torch) give ``slow``, ``fake_lsf_cluster`` gives ``lsf``. ``run_py_here`` (run.py's
  code in this process) and the session's ``shared_sweep`` (the one sweep the fast tier trains) do not
  count;
- a mark written on the test: ``slow`` for a real model or a long job, ``gpu``.

At run time, a fast-tier test that still starts ``run.py`` in a subprocess (through a path the collection
did not see) fails, saying how to move it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, ModuleType

import pytest

#: the marks of the full tier; ``full`` itself is added to every test that carries one of them
FULL_TIER_MARKS = ("slow", "slurm", "lsf", "lsf_real", "browser", "gpu")

#: a fixture → the mark it gives every test that uses it
FIXTURE_MARKS = {
    "slurm_cluster": "slurm",
    "submitit_folder": "slurm",
    "real_lsf": "lsf_real",
    "fake_lsf": "lsf",
    "browser": "browser",
}

#: names that, called by a test, a fixture it uses or a helper in tests/ that either calls, give a mark;
#: "run.py" stands for the file named as a string (``ROOT / "run.py"``)
CALL_MARKS = {
    "run_py": "slow",  # tests/conftest.py: python run.py in a subprocess
    "run.py": "slow",
    "fake_lsf_cluster": "lsf",  # tests/reliability/conftest.py: the fake LSF for a whole module
}

#: fixtures that name run.py but stay in the fast tier: run.py's code in this process, the one shared sweep
FAST_TIER_FIXTURES = {"run_py_here", "shared_sweep"}

_RUN_PY = re.compile(r"(^|[\s/])run\.py($|\s)")


# ------------------------------------------------------------------------------------------ at collection


def _names(code: CodeType, globs: dict, seen: set[CodeType], home: str) -> set[str]:
    """The names ``code`` uses and the strings it holds, with those of its nested functions and of the
    functions it names from ``tests/`` or from its own module ``home``."""
    if code in seen:
        return set()
    seen.add(code)
    found = set(code.co_names) | {c for c in code.co_consts if isinstance(c, str)}
    for name in code.co_names:
        helper = globs.get(name)
        if inspect.isfunction(helper) and (helper.__module__.startswith("tests.") or helper.__module__ == home):
            found |= _names(helper.__code__, helper.__globals__, seen, home)
    for inner in (c for c in code.co_consts if isinstance(c, CodeType)):
        found |= _names(inner, globs, seen, home)
    return found


@functools.cache
def call_marks(fn: Callable) -> frozenset[str]:
    """The marks that what ``fn`` calls gives it (CALL_MARKS)."""
    names = _names(fn.__code__, fn.__globals__, set(), fn.__module__)
    return frozenset(mark for name, mark in CALL_MARKS.items() if name in names)


def _fixture_functions(item: pytest.Item) -> Iterator[Callable]:
    """The functions of the fixtures ``item`` uses (directly or through other fixtures), found by name in
    its module, in the conftest files above it and in the plugin modules; FAST_TIER_FIXTURES left out."""
    places = [getattr(item, "module", None)]
    for plugin in item.config.pluginmanager.get_plugins():
        file = Path(getattr(plugin, "__file__", None) or "/")
        if isinstance(plugin, ModuleType) and (file.name != "conftest.py" or file.parent in item.path.parents):
            places.append(plugin)
    for name in set(getattr(item, "fixturenames", ())) - FAST_TIER_FIXTURES:
        for place in places:
            fn = inspect.unwrap(getattr(place, name, None) or (lambda: None))
            if inspect.isfunction(fn) and fn.__name__ == name:
                yield fn


def tier_marks(item: pytest.Item) -> set[str]:
    """The full-tier marks that ``item`` gets from its fixtures and from what it and they call."""
    marks = {FIXTURE_MARKS[name] for name in getattr(item, "fixturenames", ()) if name in FIXTURE_MARKS}
    for fn in [getattr(item, "function", None), *_fixture_functions(item)]:
        marks |= call_marks(fn) if fn is not None else set()
    return marks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for mark in tier_marks(item) - {m.name for m in item.iter_markers()}:
            item.add_marker(mark)
        if any(item.get_closest_marker(m) for m in FULL_TIER_MARKS):
            item.add_marker("full")


# ------------------------------------------------------------------------------------------ at run time

_running: list[pytest.Item] = []  # the test being set up, run or torn down
_allowed: list[bool] = []  # inside allow_run_py()


@contextlib.contextmanager
def allow_run_py() -> Iterator[None]:
    """For the fast tier's one shared sweep."""
    _allowed.append(True)
    try:
        yield
    finally:
        _allowed.pop()


def _check(args: object) -> None:
    """Fail a fast-tier test that starts run.py in a subprocess."""
    item = _running[-1] if _running else None
    if item is None or _allowed or item.get_closest_marker("full"):
        return
    argv = [args] if isinstance(args, (str, bytes, Path)) else list(args)  # type: ignore[call-overload]
    if any(_RUN_PY.search(str(a)) for a in argv):
        pytest.fail(f"{item.nodeid} starts run.py in a subprocess but is in the fast tier: read the "
                    "`shared_sweep`, use `run_py_here`, or move it with a mark (tests/tiers.py says how)",
                    pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _running.append(item)
    original = subprocess.Popen.__init__

    def guarded(self, args, *rest, **kwargs):
        _check(args)
        original(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = guarded  # type: ignore[method-assign]
    try:
        return (yield)
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]
        _running.pop()
