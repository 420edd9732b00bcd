"""`logllm-plugin serve` as a real process: startup log, SIGTERM under load, `detect --server`."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

from logllm_plugin.client import InferenceClient
from tests.conftest import DATA

pytestmark = pytest.mark.server
CLI = [sys.executable, "-m", "logllm_plugin"]


class ServeProcess:
    def __init__(self, *args: str):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(CLI + ["serve", "--port", "0", *args], stderr=subprocess.PIPE, text=True, env=env)
        self.log: list[dict] = []
        self._serving = threading.Event()
        self.port = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            self.log.append(entry)
            if entry.get("msg") == "listening":
                self.port = entry["grpc_port"]
            if entry.get("msg") == "serving":
                self._serving.set()

    def wait_serving(self, timeout_s=120):
        assert self._serving.wait(timeout_s), f"server did not become ready; log: {self.log[-5:]}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture()
def serve_process():
    started = []

    def start(*args):
        p = ServeProcess(*args)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def test_sigterm_under_load_finishes_in_flight_requests_then_exits(serve_process, seed_model_dir):
    from logllm_plugin.readers import read_sequences

    # Batches wait 400 ms to fill, so the requests below are in flight when SIGTERM arrives.
    server = serve_process("--model", str(seed_model_dir), "--max-wait-ms", "400", "--max-batch", "256")
    server.wait_serving()
    target = f"127.0.0.1:{server.port}"
    sequences = list(read_sequences(DATA / "seed_test.jsonl"))[:16]
    results, errors = {}, []

    def call(k):
        try:
            with InferenceClient(target, timeout_s=20) as client:
                results[k] = client.detect([sequences[k].lines])
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    server.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(results) == 16 and all(len(r) == 1 for r in results.values())
    assert server.proc.wait(30) == 0
    messages = [e["msg"] for e in server.log]
    assert messages.index("draining") < messages.index("stopped")
    with pytest.raises(grpc.RpcError) as caught:  # nothing listens any more
        with grpc.insecure_channel(target) as channel:
            channel.unary_unary("/logllm.v1.Inference/ModelInfo")(b"", timeout=2)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_detect_with_server_prints_what_local_detect_prints(serve_process, seed_model_dir, tmp_path):
    token = tmp_path / "token"
    token.write_text("a-long-random-token\n")
    server = serve_process("--model", str(seed_model_dir), "--token-file", str(token))
    server.wait_serving()
    data = str(DATA / "seed_test.jsonl")
    local = subprocess.run(CLI + ["detect", "--model", str(seed_model_dir), "--input", data, "--show", "jsonl"],
                           capture_output=True, text=True, check=True)
    remote = subprocess.run(CLI + ["detect", "--server", f"127.0.0.1:{server.port}", "--token-file", str(token),
                                   "--input", data, "--show", "jsonl"], capture_output=True, text=True)
    assert remote.returncode == 0, remote.stderr
    local_rows = [json.loads(x) for x in local.stdout.splitlines()]
    remote_rows = [json.loads(x) for x in remote.stdout.splitlines()]
    assert len(local_rows) == 200
    assert remote_rows == local_rows

    refused = subprocess.run(CLI + ["detect", "--server", f"127.0.0.1:{server.port}", "--input", data],
                             capture_output=True, text=True)
    assert refused.returncode == 1
    assert "UNAUTHENTICATED" in refused.stderr and "Traceback" not in refused.stderr


def test_broken_server_settings_are_reported_together_without_traceback(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("server:\n  max_batch_sequences: 0\n  dtype: float8\n  tls_cert: only-cert.pem\n")
    done = subprocess.run(CLI + ["serve", "--config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    for fragment in ("max_batch_sequences must be >= 1", "dtype must be", "tls_cert and server.tls_key go together"):
        assert fragment in done.stderr
    assert "Traceback" not in done.stderr
