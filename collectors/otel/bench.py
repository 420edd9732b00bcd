"""`logllm-plugin bench bridge`: records/s through the OTLP bridge beside a plain OTLP forward.

Both run in this process over real gRPC on 127.0.0.1: a sender exports `records` log records in
requests of `batch` records (spread over `keys` services) to the system under test, which forwards
to a downstream receiver; the clock stops when the downstream holds every record. The baseline is
a plain forward (each Export passed on as received: no spool, no sequencing, no scoring), measured
in the same run on the same data.
"""
from __future__ import annotations

import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as svc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as svc_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from logllm_plugin.sequencer import SequencerConfig


class _Downstream(svc_grpc.LogsServiceServicer):
    def __init__(self):
        self.count = 0
        self._cond = threading.Condition()
        self.server = grpc.server(ThreadPoolExecutor(4))
        svc_grpc.add_LogsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):  # noqa: N802
        n = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
        with self._cond:
            self.count += n
            self._cond.notify_all()
        return svc.ExportLogsServiceResponse()

    def wait_for(self, n: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.count < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class _PlainForward(svc_grpc.LogsServiceServicer):
    """The baseline: answer after passing the request on unchanged."""

    def __init__(self, forward_port: int):
        self._channel = grpc.insecure_channel(f"127.0.0.1:{forward_port}")
        self._stub = svc_grpc.LogsServiceStub(self._channel)
        self.server = grpc.server(ThreadPoolExecutor(8))
        svc_grpc.add_LogsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):  # noqa: N802
        return self._stub.Export(request, timeout=30)

    def stop(self):
        self.server.stop(0)
        self._channel.close()


def _requests(lines: list[str], records: int, batch: int, keys: int) -> list[svc.ExportLogsServiceRequest]:
    out = []
    for start in range(0, records, batch):
        by_key: dict[int, list] = {}
        for i in range(start, min(records, start + batch)):
            by_key.setdefault(i % keys, []).append(logs_pb2.LogRecord(
                body=common_pb2.AnyValue(string_value=lines[i % len(lines)])))
        out.append(svc.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
            resource=resource_pb2.Resource(attributes=[common_pb2.KeyValue(
                key="service.name", value=common_pb2.AnyValue(string_value=f"svc-{k}"))]),
            scope_logs=[logs_pb2.ScopeLogs(log_records=recs)]) for k, recs in by_key.items()]))
    return out


def _drive(port: int, requests, downstream: _Downstream, expected: int, timeout_s: float) -> float:
    started = time.perf_counter()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = svc_grpc.LogsServiceStub(channel)
        for request in requests:
            stub.Export(request, timeout=60)
    if not downstream.wait_for(expected, timeout_s):
        raise RuntimeError(f"only {downstream.count} of {expected} records arrived within {timeout_s} s")
    return time.perf_counter() - started


def run_bridge_bench(*, lines: list[str], records: int = 20_000, batch: int = 500, keys: int = 20,
                     model_dir: Optional[str] = None, idle_s: float = 0.2) -> dict:
    from collectors.otel.bridge import OtlpBridge
    from collectors.scoring import local_scorer

    requests = _requests(lines, records, batch, keys)
    results = {}
    downstream = _Downstream()
    plain = _PlainForward(downstream.port)
    results["plain_forward_s"] = _drive(plain.port, requests, downstream, records, 300)
    plain.stop()

    downstream_b = _Downstream()
    scorer = local_scorer(model_dir)
    distinct = list(dict.fromkeys(lines))
    for start in range(0, len(distinct), 200):  # load the model and warm its template cache off the clock
        scorer([distinct[start : start + 200]], 60.0)
    cache = scorer.detector.verdict_cache
    cache.clear()
    cache.hits = cache.misses = 0
    with tempfile.TemporaryDirectory() as spool:
        bridge = OtlpBridge(listen="127.0.0.1:0", forward=f"127.0.0.1:{downstream_b.port}", scorer=scorer,
                            spool_dir=spool, sequencer=SequencerConfig(idle_s=idle_s))
        bridge.start()
        results["bridge_s"] = _drive(bridge.port, requests, downstream_b, records, 600)
        bridge.stop()
    downstream.server.stop(0)
    downstream_b.server.stop(0)
    plain_rate = records / results["plain_forward_s"]
    bridge_rate = records / results["bridge_s"]
    return {
        "benchmark": "bridge",
        "records": records, "records_per_request": batch, "keys": keys, "idle_s": idle_s,
        "plain_forward_records_per_s": round(plain_rate, 1),
        "bridge_records_per_s": round(bridge_rate, 1),
        "bridge_to_plain_ratio": round(bridge_rate / plain_rate, 3),
        "baseline": "plain OTLP forward (no spool, sequencing or scoring), same run, same data",
        "note": "warm template cache; bridge time includes the last idle flush (idle_s) and in-process scoring",
        # The records cycle through a small sample, so sequences recur: say how many the cache answered.
        "verdict_cache": {"hits": cache.hits, "misses": cache.misses},
    }
