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

from logllm_plugin.client import to_request
from logllm_plugin.proto.logllm.v1 import inference_pb2 as pb
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


def _metric(http_port: int, name: str) -> float:
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_sigterm_under_load_finishes_in_flight_requests_then_exits(serve_process, seed_model_dir):
    from logllm_plugin.readers import read_sequence_file

    server = serve_process("--model", str(seed_model_dir), "--http-port", "0", "--grace-s", "120", "--max-queue", "100000")
    server.wait_serving()
    http_port = next(e["http_port"] for e in server.log if e["msg"] == "listening")
    target = f"127.0.0.1:{server.port}"
    # Big requests (400 sequences each) keep callers in flight for a while on this model.
    sequences = list(read_sequence_file(DATA / "seed_test.jsonl")) * 2
    results, errors = {}, []
    warmed = threading.Event()
    ready = threading.Barrier(16, action=warmed.set)  # every warm-up call has finished when this trips

    request = to_request(sequences)

    def call(k):
        # A bare stub, not InferenceClient: a refused call must show up here, not be retried elsewhere.
        with grpc.insecure_channel(target) as channel:
            detect = channel.unary_unary("/logllm.v1.Inference/Detect", request_serializer=pb.DetectRequest.SerializeToString,
                                         response_deserializer=pb.DetectResponse.FromString)
            detect(to_request(sequences[:1]), timeout=60)  # connected before the race starts
            ready.wait(60)
            try:
                results[k] = detect(request, timeout=120).verdicts
            except grpc.RpcError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=call, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    assert warmed.wait(120)
    deadline = time.monotonic() + 60
    while _metric(http_port, 'logllm_requests_in_flight{transport="grpc"}') < 4:  # a drain with work to do
        assert time.monotonic() < deadline, "the requests never were in flight"
        time.sleep(0.01)
    server.proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(150)
    assert server.proc.wait(60) == 0
    time.sleep(0.2)  # the log reader has the last lines
    draining = next(e for e in server.log if e["msg"] == "draining")
    stopped = next(e for e in server.log if e["msg"] == "stopped")
    assert draining["in_flight"] >= 4 and stopped["in_flight"] == 0
    # Every request the server accepted was answered and arrived: its OK count (16 warm-ups + the
    # big ones it took) equals what the clients received. The rest were refused, never cut off.
    assert stopped["answered_ok"] == 16 + len(results)
    assert len(results) >= draining["in_flight"]
    assert all(len(r) == len(sequences) for r in results.values())
    # Refused at the door: UNAVAILABLE, or CANCELLED when a call raced the listener's shutdown.
    assert all(e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED) for e in errors), errors
    with pytest.raises(grpc.RpcError) as refused:  # nothing listens any more
        with grpc.insecure_channel(target) as channel:
            channel.unary_unary("/logllm.v1.Inference/ModelInfo")(b"", timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


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

    # Explanations: the server's Analyze RPC answers what local `analyze` answers.
    local_ex = subprocess.run(CLI + ["analyze", "--model", str(seed_model_dir), "--input", data, "--json"],
                              capture_output=True, text=True, check=True)
    remote_ex = subprocess.run(CLI + ["analyze", "--server", f"127.0.0.1:{server.port}", "--token-file", str(token),
                                      "--input", data, "--json"], capture_output=True, text=True)
    assert remote_ex.returncode == 0, remote_ex.stderr
    local_ex_rows = [json.loads(x) for x in local_ex.stdout.splitlines()]
    assert local_ex_rows and [json.loads(x) for x in remote_ex.stdout.splitlines()] == local_ex_rows
    assert len(local_ex_rows) == sum(r["label"] == "anomalous" for r in local_rows)

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
