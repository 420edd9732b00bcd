"""The reliability suite: fuzzing, faults and security checks (marker `reliability`).

Bounded in time (modest hypothesis example counts, no per-example deadline: two shared cores make
timings noisy) and loopback only. Every test states in its docstring the promise it checks.
"""
from __future__ import annotations

import os
import time

from hypothesis import HealthCheck, settings

# The integration suite's server fixtures, shared rather than copied (a fixture imported into a
# conftest is available to every test below it).
from tests.integration.conftest import seed_sequences, start_server

SHARED_FIXTURES = (seed_sequences, start_server)


def fuzz(max_examples: int):
    """Hypothesis settings for this suite: modest example counts, no per-example deadline.

    Explicit per test rather than a loaded profile, so other suites' hypothesis tests keep theirs.
    FUZZ_SCALE=10 (environment) runs a ten times longer sweep by hand.
    """
    scale = float(os.environ.get("FUZZ_SCALE", "1"))
    return settings(max_examples=max(1, int(max_examples * scale)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example])


def wait_for(predicate, timeout_s: float = 30.0, what: str = "condition"):
    """Poll until predicate() is truthy; fail with `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
