"""The Go collector processor's own tests (`go vet` and `go test ./...` in
collectors/otel/logllmprocessor, with an in-process Go gRPC server), and its committed Go stubs.

Go modules and build outputs are cached under ~/.cache/logllm-ci/otelcol (shared with
scripts/build-otelcol); a cold run downloads modules and compiles for minutes. Without Go the
tests skip, except with CI=true, where a missing toolchain is a failure.
"""
from __future__ import annotations

import os
import subprocess
import sys


from collectors.otel.collector_process import find_go
from tests.conftest import require, REPO

MODULE = REPO / "collectors" / "otel" / "logllmprocessor"
STUBS = MODULE / "internal" / "logllmv1"


def go_or_skip() -> str:
    go = find_go()
    require(go, "the Go toolchain ('go'): to test collectors/otel/logllmprocessor")
    return go


def go_env() -> dict[str, str]:
    cache = os.path.join(os.environ.get("LOGLLM_CACHE", os.path.expanduser("~/.cache/logllm-ci")), "otelcol")
    env = dict(os.environ)
    env.update(GOMODCACHE=os.path.join(cache, "gomod"), GOCACHE=os.path.join(cache, "gobuild"),
               GOTOOLCHAIN="local", GOWORK="off", GOFLAGS="-mod=readonly", CGO_ENABLED="0")
    return env


def run_go(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([go_or_skip(), *args], cwd=MODULE, env=go_env(), capture_output=True, text=True,
                          timeout=timeout)


def test_go_vet_is_clean():
    done = run_go("vet", "./...")
    assert done.returncode == 0, f"go vet ./... failed:\n{done.stdout[-6000:]}{done.stderr[-6000:]}"


def test_go_unit_tests_pass():
    done = run_go("test", "-count=1", "./...")
    assert done.returncode == 0, f"go test ./... failed:\n{done.stdout[-8000:]}{done.stderr[-4000:]}"
    assert "ok  \tgithub.com/logllm/logllm-plugin/collectors/otel/logllmprocessor" in done.stdout, done.stdout


def test_committed_go_stubs_match_a_fresh_generation(tmp_path):
    go = go_or_skip()
    env = {"PYTHON": sys.executable, "PATH": f"{os.path.dirname(go)}:/usr/bin:/bin", "GO": go,
           "HOME": os.path.expanduser("~")}
    if os.environ.get("LOGLLM_CACHE"):
        env["LOGLLM_CACHE"] = os.environ["LOGLLM_CACHE"]
    done = subprocess.run(["bash", str(REPO / "scripts" / "generate-go-stubs"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    fresh_dir = tmp_path / "internal" / "logllmv1"
    fresh = sorted(p.name for p in fresh_dir.iterdir())
    committed = sorted(p.name for p in STUBS.iterdir())
    assert fresh == committed, "Go stub files differ: run scripts/generate-go-stubs and commit"
    stale = [name for name in fresh if (fresh_dir / name).read_bytes() != (STUBS / name).read_bytes()]
    assert not stale, f"stale Go stubs {stale}: run scripts/generate-go-stubs and commit"
