"""The suite cannot shrink silently: under CI=true a missing prerequisite is a failure naming it."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

import tests.conftest as suite
from tests.conftest import REPO

TESTS = REPO / "tests"


def test_a_missing_prerequisite_fails_under_ci_and_skips_with_its_name_elsewhere(monkeypatch):
    monkeypatch.setattr(suite, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true.*the Go toolchain"):
        suite.require(None, "the Go toolchain")
    monkeypatch.setattr(suite, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match="missing prerequisite: the Go toolchain"):
        suite.require("", "the Go toolchain")
    suite.require("/usr/bin/go", "the Go toolchain")  # present: nothing happens
    with pytest.raises(pytest.skip.Exception, match="no_such_module_here"):
        suite.require_module("no_such_module_here", "a module")


def test_missing_shared_datasets_fail_a_ci_run_and_name_the_path(tmp_path):
    """The real thing: pytest on a shared-data test with the datasets pointed at an empty directory."""
    env = {**os.environ, "CI": "true", "SHARED_DATASETS": str(tmp_path / "none")}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "tests/unit/test_data_check.py", "-k", "hdfs_100k"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert f"{tmp_path / 'none'}/hdfs_100k_blocks/sequences.jsonl" in proc.stdout, proc.stdout[-2000:]
    env["CI"] = "false"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                           "tests/unit/test_data_check.py", "-k", "hdfs_100k"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 skipped" in proc.stdout and "missing prerequisite" in proc.stdout, proc.stdout


def test_no_test_skips_except_through_require():
    """Every skip goes through tests/conftest.py's require (so CI=true turns it into a failure)."""
    bare = re.compile(r"pytest\.skip\(|pytest\.importorskip\(|mark\.skipif\(|mark\.skip\(|mark\.xfail\(")
    offenders = []
    for path in TESTS.rglob("*.py"):
        if path == TESTS / "conftest.py" or path == TESTS / "unit" / "test_prerequisites.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if bare.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not offenders, "use tests.conftest.require(condition, what) instead:\n" + "\n".join(offenders)
