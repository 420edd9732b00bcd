"""The committed gRPC stubs match what scripts/generate-stubs makes from proto/ today."""
from __future__ import annotations

import shutil
import subprocess
import sys

from tests.conftest import REPO, require

GENERATED = REPO / "logllm_plugin" / "proto"


def test_committed_stubs_match_a_fresh_generation(tmp_path):
    require(shutil.which("bash"), "bash (runs scripts/generate-stubs)")
    done = subprocess.run(["bash", str(REPO / "scripts" / "generate-stubs"), str(tmp_path)],
                          env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(p.relative_to(GENERATED) for p in GENERATED.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert fresh == committed, "stub files differ: run scripts/generate-stubs and commit"
    stale = [str(p) for p in fresh if (tmp_path / p).read_bytes() != (GENERATED / p).read_bytes()]
    assert not stale, f"stale stubs {stale}: run scripts/generate-stubs and commit"
