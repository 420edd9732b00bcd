"""`make test` says what it is doing (issue 16 item 12): no `-q`, a line per phase and per slow setup."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _recipe(target: str) -> list[str]:
    text = (REPO / "Makefile").read_text()
    body = text.split(f"\n{target}:", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in body.splitlines()[1:] if line.startswith("\t")]


def test_make_test_runs_pytest_without_quiet_and_ci_calls_make_test():
    pytest_lines = [line for line in _recipe("test") if "pytest" in line and not line.startswith("@echo")]
    assert len(pytest_lines) == 1, pytest_lines
    assert not re.search(r"\s-q\b|--quiet", pytest_lines[0]), pytest_lines[0]
    assert "--durations" in pytest_lines[0]
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_the_progress_plugin_prints_each_phase_and_announcements(tmp_path):
    (tmp_path / "none.ini").write_text("[pytest]\n")
    for phase, n in (("alpha", 2), ("beta", 1)):
        (tmp_path / phase).mkdir()
        (tmp_path / phase / f"test_{phase}.py").write_text(
            "import pytest\n"
            "@pytest.fixture()\n"
            "def slow():\n"
            "    from tests.progress import announce\n"
            "    announce('building the thing')\n"
            + "".join(f"def test_{phase}_{k}(slow):\n    assert True\n" for k in range(n)))
    out = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.progress", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), "-c", str(tmp_path / "none.ini"), str(tmp_path)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"^== phase 1/2: alpha \(2 tests\) \(\d+ s so far\)$", out.stdout, re.M), out.stdout
    assert re.search(r"^== phase 2/2: beta \(1 test\) \(\d+ s so far\)$", out.stdout, re.M), out.stdout
    assert out.stdout.count("== building the thing") == 3
