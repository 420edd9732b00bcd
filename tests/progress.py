"""Phase lines for long test runs (`make test`): which part of the suite runs now, how far along.

pytest's dots say nothing about a 16-minute run that builds a collector and downloads search
servers. This plugin prints `== phase i/n: tests/integration (k tests, t s so far)` when the run
enters a new test directory, and `announce()` lets a slow fixture say what it is waiting for.
Loaded by tests/conftest.py; `-p tests.progress` loads it elsewhere.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import PurePosixPath
from typing import Optional

import pytest

_state: dict = {"config": None, "phases": Counter(), "order": [], "current": None, "started": time.monotonic()}


def _phase(nodeid: str) -> str:
    return str(PurePosixPath(nodeid.split("::", 1)[0]).parent)


def announce(message: str) -> None:
    """One line on the terminal now, even while output is captured (slow setup: builds, downloads)."""
    config: Optional[pytest.Config] = _state["config"]
    reporter = config.pluginmanager.get_plugin("terminalreporter") if config else None
    elapsed = time.monotonic() - _state["started"]
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_line(f"== {message} ({elapsed:.0f} s so far)")


def pytest_configure(config: pytest.Config) -> None:
    _state["config"] = config
    _state["started"] = time.monotonic()


def pytest_collection_modifyitems(session, config, items) -> None:
    _state["phases"] = Counter(_phase(item.nodeid) for item in items)
    _state["order"] = list(dict.fromkeys(_phase(item.nodeid) for item in items))


def pytest_runtest_logstart(nodeid: str, location) -> None:
    phase = _phase(nodeid)
    if phase == _state["current"]:
        return
    _state["current"] = phase
    order = _state["order"]
    index = order.index(phase) + 1 if phase in order else len(order)
    count = _state["phases"][phase]
    announce(f"phase {index}/{len(order)}: {phase} ({count} test{'s' if count != 1 else ''})")
