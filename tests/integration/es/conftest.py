"""Real Elasticsearch / OpenSearch servers for the integration tests, started by scripts/local-stack.

Each test session gets its own servers in its own runtime directory (fresh data, a free port), so
parallel sessions never share an index; the downloads and builds are cached under
~/.cache/logllm-ci (the first run on a fresh machine fetches them from Maven Central: minutes).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from tests.conftest import REPO

LOCAL_STACK = REPO / "scripts" / "local-stack"


class LocalStack:
    def __init__(self, service: str):
        self.service = service
        # mkdtemp is private (0700); Elasticsearch runs as a system user under root and must reach it.
        self.directory = tempfile.mkdtemp(prefix=f"logllm-stack-{service}-")
        os.chmod(self.directory, 0o755)
        self.env = {**os.environ, "LOGLLM_STACK_DIR": self.directory}

    def _call(self, action: str, timeout_s: float) -> str:
        proc = subprocess.run(["bash", str(LOCAL_STACK), action, self.service], capture_output=True, text=True,
                              env=self.env, timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"scripts/local-stack {action} {self.service} failed (exit {proc.returncode}):\n"
                               f"{proc.stderr[-4000:]}{proc.stdout[-1000:]}")
        return proc.stdout

    def up(self) -> str:
        lines = self._call("up", timeout_s=1800).strip().splitlines()
        assert lines and lines[-1].startswith("http://127.0.0.1:"), lines
        return lines[-1]

    def down(self) -> None:
        try:
            self._call("down", timeout_s=120)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _started(service: str):
    if shutil.which("java") is None:
        pytest.fail(f"{service} tests need Java 17 (apt-get install openjdk-17-jdk-headless): none on PATH")
    stack = LocalStack(service)
    try:
        url = stack.up()
    except BaseException:
        stack.down()
        raise
    return stack, url


@pytest.fixture(scope="session")
def elasticsearch_url():
    """URL of a real single-node Elasticsearch 8.19 (integ-test distribution, no security)."""
    stack, url = _started("elasticsearch")
    yield url
    stack.down()


@pytest.fixture(scope="session")
def opensearch_url():
    """URL of a real single-node OpenSearch 2.19 with ingest processors (no security)."""
    stack, url = _started("opensearch")
    yield url
    stack.down()
