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

from tests.conftest import REPO, require

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

    def status(self) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(LOCAL_STACK), "status", self.service], capture_output=True, text=True,
                              env=self.env, timeout=60)

    def down(self) -> None:
        try:
            self._call("down", timeout_s=120)
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def _started(service: str):
    require(shutil.which("java"), f"Java 17 for the {service} tests (apt-get install openjdk-17-jdk-headless): "
                                  "none on PATH")
    from tests.progress import announce

    stack = LocalStack(service)
    announce(f"starting {service} (scripts/local-stack: downloads from Maven Central on the first run)")
    try:
        url = stack.up()
        announce(f"{service} up at {url}")
    except BaseException:
        stack.down()
        raise
    return stack, url


@pytest.fixture(scope="session")
def elasticsearch_stack():
    """(LocalStack, URL) of a real single-node Elasticsearch 8.19 (integ-test distribution, no security)."""
    stack, url = _started("elasticsearch")
    yield stack, url
    stack.down()


@pytest.fixture(scope="session")
def elasticsearch_url(elasticsearch_stack):
    return elasticsearch_stack[1]


@pytest.fixture(scope="session")
def opensearch_url():
    """URL of a real single-node OpenSearch 2.19 with ingest processors (no security)."""
    stack, url = _started("opensearch")
    yield url
    stack.down()


# ------------------------------------------------------------------------------------ test data
T0_MS = 1767225600000  # 2026-01-01T00:00:00Z


def seed_documents(copies: int = 1, limit: int | None = None, spacing_ms: int = 10) -> list[dict]:
    """Documents built from the bundled seed sequences: one per line, keyed by `trace_id`,
    `@timestamp` increasing by `spacing_ms`; `copies` repeats the sample with fresh trace ids."""
    from logllm_plugin.readers import read_sequence_file
    from tests.conftest import DATA

    sequences = list(read_sequence_file(DATA / "seed_test.jsonl"))[:limit]
    docs, n = [], 0
    for copy in range(copies):
        for seq in sequences:
            for line in seq.lines:
                docs.append({"@timestamp": T0_MS + n * spacing_ms, "trace_id": f"{seq.id}/{copy}", "message": line,
                             "service": {"name": "seed"}})
                n += 1
    return docs


def index_documents(client, index: str, docs: list[dict], chunk: int = 2000) -> None:
    for start in range(0, len(docs), chunk):
        ops = []
        for doc in docs[start:start + chunk]:
            ops += [{"index": {"_index": index}}, doc]
        result = client.bulk(ops)
        assert not result.get("errors"), result["items"][:3]
    client.refresh(index)


def all_hits(client, index: str) -> list[dict]:
    """Every document with its _version (scrolls by PIT; no 10k limit)."""
    client.refresh(index)
    pit, after, out = client.open_pit(index), None, []
    try:
        while True:
            body = {"pit": {"id": pit, "keep_alive": "1m"}, "size": 5000, "version": True,
                    "sort": [client.tiebreaker_sort()]}
            if after:
                body["search_after"] = after
            hits = client.search(body)["hits"]["hits"]
            if not hits:
                return out
            out += hits
            after = hits[-1]["sort"]
    finally:
        client.close_pit(pit)


@pytest.fixture(scope="session")
def es_client(elasticsearch_url):
    from collectors.elastic.connection import connect

    client = connect(elasticsearch_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def os_client(opensearch_url):
    from collectors.elastic.connection import connect

    client = connect(opensearch_url)
    yield client
    client.close()
