"""Faults around the OTLP bridge: a slow downstream, a full disk, a checkpoint that cannot be
written, a read-only spool directory.

The promise: the bridge never loses or duplicates a record it acknowledged; when it cannot keep up
or cannot write, it says so with a retryable status (UNAVAILABLE, which the collector retries; never
UNKNOWN, which the collector drops) and a clear message; its spool stays bounded.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as svc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as svc_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from collectors.otel.bridge import OtlpBridge
from collectors.otel.spool import Spool, SpoolWriteError
from tests.conftest import REPO, require
from tests.reliability.conftest import wait_for
from tests.reliability.test_fuzz_otlp_bridge import Receiver, attr
from logllm_plugin.sequencer import SequencerConfig

pytestmark = [pytest.mark.reliability, pytest.mark.server]


def fake_scorer(sequences, timeout_s):
    """Scores instantly: these tests are about the spool and the downstream, not the model."""
    from logllm_plugin.records import Verdict

    return [Verdict(id=str(n), label="normal", score=0.1, category="normal", evidence=[], novel_templates=0)
            for n, _ in enumerate(sequences)]


class SlowReceiver(Receiver):
    def __init__(self, delay_s: float):
        super().__init__()
        self.delay_s = delay_s

    def Export(self, request, context):
        time.sleep(self.delay_s)
        return super().Export(request, context)


def request_for(service: str, start: int, count: int, pad: int = 0) -> svc.ExportLogsServiceRequest:
    resource = resource_pb2.Resource(attributes=[common_pb2.KeyValue(
        key="service.name", value=common_pb2.AnyValue(string_value=service))])
    records = [logs_pb2.LogRecord(body=common_pb2.AnyValue(string_value=f"{service} item {start + i} " + "x" * pad),
                                  attributes=[common_pb2.KeyValue(key="n", value=common_pb2.AnyValue(int_value=start + i))])
               for i in range(count)]
    return svc.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource, scope_logs=[logs_pb2.ScopeLogs(log_records=records)])])


def numbers_by_service(receiver) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    with receiver.lock:
        for record in receiver.records:
            out.setdefault(str(attr(record, "logllm.sequence.key")), []).append(attr(record, "n"))
    return out


def test_a_slow_downstream_pushes_back_with_unavailable_and_loses_nothing(tmp_path):
    """Promise: with a downstream taking 0.15 s per Export and four senders going as fast as they
    can, the bridge answers UNAVAILABLE once its spool is full (backpressure), its spool never grows
    past max_bytes plus one request, and every acknowledged record arrives once, in order per key."""
    receiver = SlowReceiver(delay_s=0.15)
    max_bytes = 6_000
    bridge = OtlpBridge(listen="127.0.0.1:0", forward=f"127.0.0.1:{receiver.port}", scorer=fake_scorer,
                        spool_dir=tmp_path / "spool", spool_max_bytes=max_bytes, sequencer=SequencerConfig(max_lines=5, idle_s=0.2)).start()
    biggest_request = len(request_for("svc-0", 0, 5, pad=40).SerializeToString()) + 20
    pushed_back, peak = [], [0]
    done = threading.Event()

    def watch_spool():
        while not done.is_set():
            peak[0] = max(peak[0], bridge.spool.pending_bytes)
            time.sleep(0.005)

    def send(service):
        with grpc.insecure_channel(f"127.0.0.1:{bridge.port}") as channel:
            stub = svc_grpc.LogsServiceStub(channel)
            n = 0
            while n < 150:
                try:
                    stub.Export(request_for(service, n, 5, pad=40), timeout=10)
                    n += 5
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.UNAVAILABLE, exc
                    pushed_back.append(exc.details())
                    time.sleep(0.05)  # the collector's retry, shortened

    watcher = threading.Thread(target=watch_spool, daemon=True)
    watcher.start()
    senders = [threading.Thread(target=send, args=(f"svc-{k}",)) for k in range(4)]
    for t in senders:
        t.start()
    for t in senders:
        t.join(120)
    wait_for(lambda: len(receiver.records) >= 600, 60, "600 records downstream")
    done.set()
    bridge.stop()
    receiver.server.stop(0)
    assert pushed_back and all("bridge busy" in d for d in pushed_back)
    assert peak[0] <= max_bytes + biggest_request
    got = numbers_by_service(receiver)
    assert len(receiver.records) == 600
    assert all(got[f"svc-{k}"] == list(range(150)) for k in range(4))


def test_a_full_disk_answers_unavailable_and_nothing_is_lost_once_space_returns(tmp_path):
    """Promise: when a spool write fails with ENOSPC (the segment file is /dev/full), Export answers
    UNAVAILABLE naming the problem (never UNKNOWN, which the collector would drop), the bridge keeps
    running, and once the disk has room the retried request and later ones arrive exactly once."""
    require(Path("/dev/full").exists(), "/dev/full (the device that simulates a full disk)")
    receiver = Receiver()
    spool_dir = tmp_path / "spool"
    bridge = OtlpBridge(listen="127.0.0.1:0", forward=f"127.0.0.1:{receiver.port}", scorer=fake_scorer,
                        spool_dir=spool_dir, sequencer=SequencerConfig(max_lines=3, idle_s=0.2)).start()
    full = spool_dir / "segment-1.log"
    full.symlink_to("/dev/full")  # the first segment the bridge opens: every write gets ENOSPC
    with grpc.insecure_channel(f"127.0.0.1:{bridge.port}") as channel:
        stub = svc_grpc.LogsServiceStub(channel)
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as caught:
                stub.Export(request_for("api", 0, 3), timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "cannot be written" in caught.value.details() and "No space left" in caught.value.details()
        full.unlink()  # space again
        stub.Export(request_for("api", 0, 3), timeout=10)  # the collector's retry of the same batch
        stub.Export(request_for("api", 3, 3), timeout=10)
    wait_for(lambda: len(receiver.records) >= 6, 20, "6 records downstream")
    bridge.stop()
    receiver.server.stop(0)
    assert numbers_by_service(receiver) == {"api": list(range(6))}
    reopened = Spool(spool_dir)  # nothing torn or pending is left behind for a restart to replay
    assert reopened.take(0) is None
    reopened.close()


def test_a_checkpoint_that_cannot_be_written_delays_truncation_but_not_forwarding(tmp_path):
    """Promise: when the spool's `committed` mark cannot be written (simulated by a directory in the
    way of its temp file), records still reach the downstream exactly once, the failure is reported
    in `spool.commit_error`, and once the mark can be written again it catches up and the finished
    segments are deleted."""
    receiver = Receiver()
    spool_dir = tmp_path / "spool"
    bridge = OtlpBridge(listen="127.0.0.1:0", forward=f"127.0.0.1:{receiver.port}", scorer=fake_scorer,
                        spool_dir=spool_dir, sequencer=SequencerConfig(max_lines=3, idle_s=0.2)).start()
    bridge.spool.segment_bytes = 200  # a new segment every request or two, so truncation is visible
    (spool_dir / "committed.tmp").mkdir()  # open(..., "w") now fails with IsADirectoryError
    with grpc.insecure_channel(f"127.0.0.1:{bridge.port}") as channel:
        stub = svc_grpc.LogsServiceStub(channel)
        for k in range(6):
            stub.Export(request_for("api", 3 * k, 3), timeout=10)
        wait_for(lambda: len(receiver.records) >= 18, 20, "18 records downstream")
        assert bridge.spool.commit_error and "directory" in bridge.spool.commit_error.lower()
        assert len(list(spool_dir.glob("segment-*.log"))) >= 3  # kept: the mark on disk is behind
        (spool_dir / "committed.tmp").rmdir()
        wait_for(lambda: bridge.spool.commit_error is None, 10, "the committed mark to be written")
        stub.Export(request_for("api", 18, 3), timeout=10)
    wait_for(lambda: len(receiver.records) >= 21, 20, "21 records downstream")
    bridge.stop()
    receiver.server.stop(0)
    assert numbers_by_service(receiver) == {"api": list(range(21))}
    assert len(list(spool_dir.glob("segment-*.log"))) <= 2
    assert '"seq": 7' in (spool_dir / "committed").read_text()


@contextlib.contextmanager
def read_only(directory: Path):
    """Make `directory` read-only for this process: permission bits for a normal user; root ignores
    those, so as root a read-only bind mount (a missing prerequisite where mounting is not allowed)."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield "Permission denied"
        finally:
            directory.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True)
    require(mounted.returncode == 0, "the right to bind-mount (CAP_SYS_ADMIN) when tests run as root: root ignores "
            f"permission bits, so a read-only directory needs a read-only mount ({mounted.stderr.decode().strip()})")
    try:
        remount = subprocess.run(["mount", "-o", "remount,ro,bind", str(directory)], capture_output=True)
        require(remount.returncode == 0, "the right to remount read-only (CAP_SYS_ADMIN) when tests run as root "
                f"({remount.stderr.decode().strip()})")
        yield "Read-only file system"
    finally:
        subprocess.run(["umount", str(directory)], capture_output=True)


def test_a_read_only_spool_directory_stops_the_bridge_at_start_with_a_clear_error(tmp_path):
    """Promise: `logllm-plugin otel bridge` on a spool directory it cannot write exits non-zero at
    start with one line naming the directory and the reason, no traceback (so it never acknowledges
    a request it could not store); the library raises SpoolWriteError, a retryable kind."""
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    with read_only(spool_dir) as reason:
        with pytest.raises(SpoolWriteError, match=f"spool directory {spool_dir} is not writable: {reason}"):
            Spool(spool_dir)
        proc = subprocess.run(
            [sys.executable, "-m", "logllm_plugin", "otel", "bridge", "--listen", "127.0.0.1:0",
             "--forward", "127.0.0.1:9", "--server", "127.0.0.1:9", "--spool", str(spool_dir)],
            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"spool directory {spool_dir} is not writable: {reason}" in proc.stderr
    assert "Traceback" not in proc.stderr
