"""The OTLP bridge between real gRPC endpoints: OTLP in, annotated OTLP out, nothing lost."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as svc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as svc_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from collectors.otel.bridge import OtlpBridge
from collectors.scoring import local_scorer
from logllm_plugin.sequencer import SequencerConfig

pytestmark = pytest.mark.server


class Receiver(svc_grpc.LogsServiceServicer):
    """A downstream OTLP receiver (what the collector's second pipeline would be)."""

    def __init__(self, fail_first: int = 0):
        self.records: list[logs_pb2.LogRecord] = []
        self.resources: list[str] = []
        self.fail_first = fail_first
        self.calls = 0
        self.lock = threading.Lock()
        self.server = grpc.server(ThreadPoolExecutor(4))
        svc_grpc.add_LogsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                context.abort(grpc.StatusCode.UNAVAILABLE, "downstream restarting")
            for rl in request.resource_logs:
                service = next(kv.value.string_value for kv in rl.resource.attributes if kv.key == "service.name")
                for sl in rl.scope_logs:
                    for record in sl.log_records:
                        self.records.append(record)
                        self.resources.append(service)
        return svc.ExportLogsServiceResponse()

    def stop(self):
        self.server.stop(0)


def attr(record, key):
    for kv in record.attributes:
        if kv.key == key:
            return getattr(kv.value, kv.value.WhichOneof("value"))
    return None


def export_request(service: str, lines, start: int) -> svc.ExportLogsServiceRequest:
    records = [logs_pb2.LogRecord(body=common_pb2.AnyValue(string_value=line),
                                  attributes=[common_pb2.KeyValue(key="n", value=common_pb2.AnyValue(int_value=start + i))])
               for i, line in enumerate(lines)]
    resource = resource_pb2.Resource(attributes=[common_pb2.KeyValue(key="service.name",
                                                                     value=common_pb2.AnyValue(string_value=service))])
    return svc.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource, scope_logs=[logs_pb2.ScopeLogs(log_records=records)])])


def send(port, request, timeout=10):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return svc_grpc.LogsServiceStub(channel).Export(request, timeout=timeout)


def wait_for(predicate, timeout_s=30):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def scorer(seed_model_dir):
    from logllm_plugin.detector import Detector

    return local_scorer(detector=Detector.load(seed_model_dir, device="cpu"))


def bridge_for(receiver, scorer, tmp_path, max_lines=15, idle_s=0.5, **kwargs):
    return OtlpBridge(listen="127.0.0.1:0", forward=f"127.0.0.1:{receiver.port}", scorer=scorer,
                      spool_dir=tmp_path / "spool", sequencer=SequencerConfig(max_lines=max_lines, idle_s=idle_s),
                      **kwargs).start()


def test_records_arrive_once_annotated_and_in_order_per_key_across_requests(scorer, seed_sequences, tmp_path):
    receiver = Receiver()
    # idle_s well above the gap between two requests on a loaded host (0.5 s closed a sequence at
    # 12 lines once, with other jobs on both cores): this test is about sequences spanning requests
    bridge = bridge_for(receiver, scorer, tmp_path, max_lines=15, idle_s=5.0)
    lines = [line for s in seed_sequences[:6] for line in s.lines]
    # Two services interleaved, each request carrying a few lines: sequences span requests.
    for start in range(0, len(lines), 4):
        send(bridge.port, export_request("api", lines[start : start + 4], start))
        send(bridge.port, export_request("db", lines[start : start + 4], start))
    wait_for(lambda: len(receiver.records) == 2 * len(lines))
    bridge.stop()
    receiver.stop()
    for service in ("api", "db"):
        mine = [r for r, s in zip(receiver.records, receiver.resources) if s == service]
        assert [attr(r, "n") for r in mine] == list(range(len(lines)))
        assert [r.body.string_value for r in mine] == lines
        assert {attr(r, "logllm.status") for r in mine} == {"ok"}
        assert {attr(r, "logllm.anomaly.label") for r in mine} <= {"normal", "anomalous"}
        positions = [attr(r, "logllm.sequence.position") for r in mine]
        assert positions[:15] == list(range(15))  # whole sequences of 15, not cut at the 4-line requests
    assert bridge.spool.pending_bytes == 0


def test_a_slow_or_failing_downstream_delays_but_loses_nothing(scorer, tmp_path):
    receiver = Receiver(fail_first=3)
    bridge = bridge_for(receiver, scorer, tmp_path, max_lines=5)
    for k in range(4):
        response = send(bridge.port, export_request("api", [f"job {k}.{i} done" for i in range(5)], 5 * k))
        assert not response.HasField("partial_success") or response.partial_success.rejected_log_records == 0
    wait_for(lambda: len(receiver.records) == 20)
    bridge.stop()
    receiver.stop()
    assert [attr(r, "n") for r in receiver.records] == list(range(20))
    assert receiver.calls > 4  # the failed attempts were retried


def test_a_full_spool_answers_unavailable_so_the_collector_backs_off(scorer, tmp_path):
    receiver = Receiver(fail_first=10_000)  # downstream never accepts
    bridge = bridge_for(receiver, scorer, tmp_path, max_lines=2, spool_max_bytes=400)
    codes = []
    for k in range(20):
        try:
            send(bridge.port, export_request("api", [f"line {k} " + "x" * 40], k))
            codes.append("OK")
        except grpc.RpcError as exc:
            codes.append(exc.code().name)
    bridge.stop(grace_s=0.5, flush=False)
    receiver.stop()
    assert codes[0] == "OK" and "UNAVAILABLE" in codes


def test_malformed_request_is_answered_invalid_argument_and_the_bridge_keeps_working(scorer, tmp_path):
    receiver = Receiver()
    bridge = bridge_for(receiver, scorer, tmp_path, max_lines=2)
    with grpc.insecure_channel(f"127.0.0.1:{bridge.port}") as channel:
        raw = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")
        with pytest.raises(grpc.RpcError) as caught:
            raw(b"\xff\xff\xff not protobuf", timeout=5)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    send(bridge.port, export_request("api", ["after the bad one", "still fine"], 0))
    wait_for(lambda: len(receiver.records) == 2)
    bridge.stop()
    receiver.stop()


def test_a_bridge_killed_before_forwarding_replays_its_spool_on_restart(scorer, tmp_path):
    down = Receiver(fail_first=10_000)
    first = bridge_for(down, scorer, tmp_path, max_lines=3)
    for k in range(3):
        send(first.port, export_request("api", [f"step {k}.{i}" for i in range(3)], 3 * k))
    first.stop(grace_s=0.2, flush=False)  # as if killed: nothing reached the downstream
    down.stop()
    receiver = Receiver()
    second = bridge_for(receiver, scorer, tmp_path, max_lines=3)
    wait_for(lambda: len(receiver.records) == 9)
    second.stop()
    receiver.stop()
    assert [attr(r, "n") for r in receiver.records] == list(range(9))
    assert not list((tmp_path / "spool").glob("segment-*.log"))[1:]  # acknowledged segments are gone


def scrape(port) -> dict:
    """/metrics over HTTP, as {'name{labels}': value}."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def test_metrics_show_the_spool_filling_while_downstream_is_down_and_draining_after(scorer, tmp_path):
    receiver = Receiver(fail_first=6)  # the first 6 forwards fail: the spool holds the records meanwhile
    bridge = bridge_for(receiver, scorer, tmp_path, max_lines=5, spool_max_bytes=1 << 20)
    metrics_port = bridge.metrics.serve("127.0.0.1", 0)
    for k in range(4):
        send(bridge.port, export_request("api", [f"job {k}.{i} done" for i in range(5)], 5 * k))
    with grpc.insecure_channel(f"127.0.0.1:{bridge.port}") as channel, pytest.raises(grpc.RpcError):
        channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")(b"\xff\xff", timeout=5)
    during = scrape(metrics_port)
    assert during["logllm_bridge_spool_pending_bytes{}"] > 0
    assert during["logllm_bridge_spool_limit_bytes{}"] == 1 << 20
    assert during["logllm_bridge_export_requests_total{outcome=accepted}"] == 4
    assert during["logllm_bridge_export_requests_total{outcome=malformed}"] == 1
    wait_for(lambda: len(receiver.records) == 20)
    wait_for(lambda: scrape(metrics_port)["logllm_bridge_spool_pending_bytes{}"] == 0)
    after = scrape(metrics_port)
    bridge.stop()
    receiver.stop()
    assert after["logllm_bridge_records_received_total{}"] == 20
    assert after["logllm_bridge_records_forwarded_total{status=ok}"] == 20
    assert after["logllm_bridge_downstream_failures_total{}"] >= 6
    assert after["logllm_bridge_open_sequences{}"] == 0


# ------------------------------------------------------------------------------------------ OTLP/HTTP
def post(port, body: bytes, content_type="application/x-protobuf", encoding=None, path="/v1/logs"):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    out = (response.status, response.getheader("Content-Type"), response.getheader("Retry-After"), response.read())
    conn.close()
    return out


def test_otlp_http_protobuf_gzip_and_json_are_spooled_and_forwarded_like_grpc(scorer, tmp_path):
    import gzip

    from google.protobuf import json_format

    receiver = Receiver()
    bridge = bridge_for(receiver, scorer, tmp_path, max_lines=5, http_listen="127.0.0.1:0")
    first = export_request("api", [f"job {i} done" for i in range(5)], 0).SerializeToString()
    status, ctype, _, body = post(bridge.http_port, gzip.compress(first), encoding="gzip")
    assert (status, ctype) == (200, "application/x-protobuf")
    svc.ExportLogsServiceResponse.FromString(body)
    second = json_format.MessageToJson(export_request("api", [f"job {i} done" for i in range(5, 10)], 5))
    status, ctype, _, _ = post(bridge.http_port, second.encode(), content_type="application/json")
    assert (status, ctype) == (200, "application/json")
    wait_for(lambda: len(receiver.records) == 10)
    bridge.stop()
    receiver.stop()
    assert [attr(r, "n") for r in receiver.records] == list(range(10))
    assert {attr(r, "logllm.status") for r in receiver.records} == {"ok"}


def test_otlp_http_refusals_say_why_with_the_status_a_sender_acts_on(scorer, tmp_path):
    import gzip

    from google.rpc import status_pb2

    receiver = Receiver(fail_first=10_000)  # downstream never accepts: the spool fills
    bridge = bridge_for(receiver, scorer, tmp_path, max_lines=2, spool_max_bytes=400, http_listen="127.0.0.1:0",
                        max_request_bytes=4096)
    port = bridge.http_port
    status, _, _, body = post(port, b"\xff\xff not protobuf")
    assert status == 400 and "not a valid" in status_pb2.Status.FromString(body).message
    assert post(port, b"{", content_type="application/json")[0] == 400
    assert post(port, b"x", content_type="text/plain")[0] == 415
    assert post(port, b"x", path="/v1/traces")[0] == 404
    assert post(port, b"not gzip", encoding="gzip")[0] == 400
    assert post(port, b"x", encoding="br")[0] == 415
    assert post(port, gzip.compress(b"\0" * 100_000), encoding="gzip")[0] == 413  # inflates past the limit
    codes = []
    for k in range(20):
        status, _, retry_after, _ = post(port, export_request("api", [f"line {k} " + "x" * 40], k).SerializeToString())
        codes.append((status, retry_after))
    bridge.stop(grace_s=0.5, flush=False)
    receiver.stop()
    assert codes[0] == (200, None) and (503, "1") in codes  # full spool: retry later, keep the records
