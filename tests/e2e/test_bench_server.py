"""`logllm-plugin bench server` against real server processes, from clients outside the bench process."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from logllm_plugin.benchmarks.server import find_ghz
from logllm_plugin.cli import main
from tests.conftest import require

pytestmark = pytest.mark.server


def _bench(client: str) -> dict:
    result = CliRunner().invoke(main, ["bench", "server", "--requests", "24", "--concurrency", "1,3",
                                       "--threads", "1", "--client", client, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])


def _check(figures: dict, client: str) -> None:
    assert figures["client"] == client
    assert [(r["batching"], r["concurrency"]) for r in figures["runs"]] == [("on", 1), ("on", 3), ("off", 1), ("off", 3)]
    for row in figures["runs"]:
        assert row["requests"] == 24 and row["errors"] == 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert 0 <= row["client_cpu_share"] <= 1
        assert 0 < row["server_cpu_share"] <= 1  # the server did the scoring, in its own process


def test_bench_server_drives_the_server_from_a_separate_python_process():
    _check(_bench("process"), "process")


@pytest.mark.slow
def test_bench_server_with_ghz_reports_what_ghz_measured():
    require(find_ghz(), "ghz on PATH or under ~/.cache/logllm-ci/gobin (`make test` installs it: GOBIN=... "
                        "go install github.com/bojand/ghz/cmd/ghz@v0.121.0)")
    _check(_bench("ghz"), "ghz")
