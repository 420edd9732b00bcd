"""A real gRPC inference server on port 0, in-process, with the tiny seed model."""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request

import grpc
import pytest

from logllm_plugin.client import InferenceClient
from logllm_plugin.proto.logllm.v1 import inference_pb2 as pb
from tests.integration.conftest import GatedDetector, make_test_pki

pytestmark = pytest.mark.server


def raw_detect(port: int, payload: bytes, metadata=(), timeout=10):
    """Send bytes as a Detect request, bypassing client-side serialization."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/logllm.v1.Inference/Detect", request_serializer=None,
                                   response_deserializer=pb.DetectResponse.FromString)
        return call(payload, timeout=timeout, metadata=metadata)


def detect_request(*sequences) -> bytes:
    return pb.DetectRequest(sequences=[pb.Sequence(lines=s) for s in sequences]).SerializeToString()


def assert_same_verdicts(remote, local):
    assert len(remote) == len(local)
    for r, l in zip(remote, local):
        assert (r.id, r.label, r.category, r.evidence, r.novel_templates, r.model_version) == \
               (l.id, l.label, l.category, l.evidence, l.novel_templates, l.model_version)
        assert r.score == pytest.approx(l.score, abs=1e-6)


def test_sixteen_concurrent_clients_get_the_in_process_detectors_answers(start_server, seed_model_dir, seed_sequences):
    from logllm_plugin.detector import Detector

    server = start_server(max_batch_sequences=32, max_wait_ms=20)
    local = Detector.load(seed_model_dir, device="cpu")
    slices = [seed_sequences[k::16][:8] for k in range(16)]
    expected = [local.detect(s) for s in slices]
    results, errors = [None] * 16, []

    def worker(k):
        try:
            with InferenceClient(f"127.0.0.1:{server.port}") as client:
                results[k] = client.detect(slices[k])
        except Exception as exc:  # surfaced below with the slice it came from
            errors.append((k, exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for got, want in zip(results, expected):
        assert_same_verdicts(got, want)
    assert any(v.label == "anomalous" for r in results for v in r) and any(v.label == "normal" for r in results for v in r)
    # Dynamic batching really merged requests: fewer model calls than requests.
    batches = server.metrics.batch_sizes.collect()[0]
    count = next(s.value for s in batches.samples if s.name.endswith("_count"))
    assert count < 16


def test_why_the_sender_closed_a_sequence_reaches_the_detector(start_server, seed_model_dir, seed_sequences):
    """closed_by travels with its sequence over gRPC (a learner keeps it with its history); an
    unknown reason is INVALID_ARGUMENT naming it."""
    from logllm_plugin.detector import Detector
    from logllm_plugin.records import LogSequence

    gated = GatedDetector(Detector.load(seed_model_dir, device="cpu"))
    gated.gate.set()
    server = start_server(loader=lambda: gated)
    cut = LogSequence(id="cut", lines=seed_sequences[0].lines[:3], closed_by="age")
    whole = LogSequence(id="whole", lines=seed_sequences[1].lines)
    with InferenceClient(f"127.0.0.1:{server.port}") as client:
        verdicts = client.detect([cut, whole])
    assert [v.id for v in verdicts] == ["cut", "whole"]
    assert list(zip(gated.closed_by, gated.seen))[-2:] == [("age", cut.lines), (None, whole.lines)]
    bad = pb.DetectRequest(sequences=[pb.Sequence(lines=["x"], closed_by="tired")]).SerializeToString()
    with pytest.raises(grpc.RpcError) as caught:
        raw_detect(server.port, bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "closed_by 'tired'" in caught.value.details()


def test_full_queue_answers_resource_exhausted(start_server, seed_model_dir, seed_sequences):
    from logllm_plugin.detector import Detector

    gated = GatedDetector(Detector.load(seed_model_dir, device="cpu"))
    server = start_server(loader=lambda: gated, max_queue_sequences=2, max_batch_sequences=1, max_wait_ms=0)
    lines = seed_sequences[0].lines
    first = threading.Thread(target=raw_detect, args=(server.port, detect_request(lines)))
    first.start()
    assert gated.entered.wait(10)  # the worker holds request 1; the queue is empty again
    second = threading.Thread(target=raw_detect, args=(server.port, detect_request(lines, lines)))
    second.start()
    deadline = time.monotonic() + 10
    while server.core.batcher.queued_sequences < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(grpc.RpcError) as caught:
        raw_detect(server.port, detect_request(lines))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue" in caught.value.details()
    gated.gate.set()
    first.join(10)
    second.join(10)


def test_expired_deadline_is_answered_and_its_work_skipped(start_server, seed_model_dir, seed_sequences):
    from logllm_plugin.detector import Detector

    gated = GatedDetector(Detector.load(seed_model_dir, device="cpu"))
    server = start_server(loader=lambda: gated, max_batch_sequences=1, max_wait_ms=0)
    blocker = threading.Thread(target=raw_detect, args=(server.port, detect_request(seed_sequences[0].lines)))
    blocker.start()
    assert gated.entered.wait(10)
    late = ["a line only the late request carries", "and its second line"]
    with pytest.raises(grpc.RpcError) as caught:
        raw_detect(server.port, detect_request(late), timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    gated.gate.set()
    blocker.join(10)
    time.sleep(0.2)  # the worker has moved past the late job by now
    assert late not in gated.seen
    assert seed_sequences[0].lines in gated.seen


def test_wrong_or_missing_token_is_unauthenticated_and_health_stays_open(start_server, seed_sequences):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    server = start_server(token="s3cret-token")
    request = detect_request(seed_sequences[0].lines)
    for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "s3cret-token"),)):
        with pytest.raises(grpc.RpcError) as caught:
            raw_detect(server.port, request, metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    response = raw_detect(server.port, request, metadata=(("authorization", "Bearer s3cret-token"),))
    assert len(response.verdicts) == 1
    with InferenceClient(f"127.0.0.1:{server.port}", token="s3cret-token") as client:
        assert client.detect([seed_sequences[0].lines])[0].label in ("normal", "anomalous")
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="logllm.v1.Inference"), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("payload, expected", [
    (detect_request(), "no sequence"),
    (detect_request([]), "has no line"),
    (detect_request(["x"] * 51), "51 lines"),
    (detect_request(["y" * 200]), "longer than 100 bytes"),
    (b"\xff\x00garbage that is not a protobuf message", "not a valid logllm.v1.DetectRequest"),
    # A Sequence whose line is invalid UTF-8 (proto3 strings must be UTF-8).
    (b"\x0a\x05\x1a\x03\xff\xfe\xfd", "not a valid logllm.v1.DetectRequest"),
    (detect_request(*[["z"]] * 11), "11 sequences"),
    (b"\x0a\x05\x1a\x03abc" * 200, "bytes; the limit is 1000"),
])
def test_malformed_or_oversized_requests_are_invalid_argument(start_server, payload, expected):
    server = start_server(max_lines_per_sequence=50, max_line_bytes=100, max_sequences_per_request=10,
                          max_request_bytes=1000)
    with pytest.raises(grpc.RpcError) as caught:
        raw_detect(server.port, payload)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expected in caught.value.details()


def test_health_goes_from_not_serving_to_serving_once_the_model_is_warm(start_server, seed_model_dir):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from logllm_plugin.detector import Detector

    release = threading.Event()

    def slow_loader():
        release.wait(30)
        return Detector.load(seed_model_dir, device="cpu")

    server = start_server(loader=slow_loader, wait=False)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        ask = health_pb2.HealthCheckRequest(service="logllm.v1.Inference")
        assert health.Check(ask, timeout=5).status == health_pb2.HealthCheckResponse.NOT_SERVING
        with pytest.raises(grpc.RpcError) as caught:
            raw_detect(server.port, detect_request(["a line"]))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        release.set()
        assert server.wait_ready(60)
        assert health.Check(ask, timeout=5).status == health_pb2.HealthCheckResponse.SERVING


def test_drain_turns_health_off_first_refuses_new_calls_and_finishes_in_flight_ones(start_server, seed_model_dir,
                                                                                    seed_sequences):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from logllm_plugin.detector import Detector

    gated = GatedDetector(Detector.load(seed_model_dir, device="cpu"))
    server = start_server(loader=lambda: gated, max_batch_sequences=1, max_wait_ms=0)
    answers, errors = [], []

    def call(lines):
        try:
            answers.append(raw_detect(server.port, detect_request(lines), timeout=30))
        except grpc.RpcError as exc:
            errors.append(exc)

    in_flight = [threading.Thread(target=call, args=(s.lines,)) for s in seed_sequences[:4]]
    for t in in_flight:
        t.start()
    assert gated.entered.wait(10)
    deadline = time.monotonic() + 10
    while server.core.batcher.queued_sequences < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="logllm.v1.Inference"), timeout=30)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        stopper = threading.Thread(target=server.stop, kwargs={"grace_s": 30})
        stopper.start()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING  # before anything else
        watch.cancel()  # a watcher that stays would hold the drain open until the grace period ends
    time.sleep(0.2)
    with pytest.raises(grpc.RpcError) as refused:
        raw_detect(server.port, detect_request(["a new call"]), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    gated.gate.set()
    for t in in_flight:
        t.join(30)
    stopper.join(30)
    assert not errors and len(answers) == 4 and not stopper.is_alive()


def test_tls_round_trip_with_a_ca_made_in_the_test(start_server, tmp_path, seed_sequences):
    pki = make_test_pki(tmp_path)
    server = start_server(tls_cert=str(pki["server_cert"]), tls_key=str(pki["server_key"]))
    with InferenceClient(f"localhost:{server.port}", tls_ca=str(pki["ca"])) as client:
        verdicts = client.detect([seed_sequences[0].lines])
    assert len(verdicts) == 1 and verdicts[0].label in ("normal", "anomalous")
    with pytest.raises(grpc.RpcError) as caught:  # plaintext against a TLS port does not get through
        raw_detect(server.port, detect_request(["a line"]), timeout=3)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE


def test_client_certificates_are_required_when_a_client_ca_is_set(start_server, tmp_path, seed_sequences):
    pki = make_test_pki(tmp_path)
    server = start_server(tls_cert=str(pki["server_cert"]), tls_key=str(pki["server_key"]),
                          tls_client_ca=str(pki["ca"]))
    with InferenceClient(f"localhost:{server.port}", tls_ca=str(pki["ca"]), timeout_s=3) as client:
        with pytest.raises((grpc.RpcError, TimeoutError)):
            client.detect([seed_sequences[0].lines])
    with InferenceClient(f"localhost:{server.port}", tls_ca=str(pki["ca"]), tls_cert=str(pki["client_cert"]),
                         tls_key=str(pki["client_key"])) as client:
        assert len(client.detect([seed_sequences[0].lines])) == 1


def _http(port, path, body=None, token=None, raw=None):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_http_endpoint_answers_like_grpc_and_rejects_bad_json(start_server, seed_sequences):
    server = start_server(http_port=0, token="tok")
    picked = seed_sequences[:6]
    with InferenceClient(f"127.0.0.1:{server.port}", token="tok") as client:
        via_grpc = client.detect(picked)
    status, body = _http(server.http_port, "/v1/detect", {"sequences": [s.lines for s in picked]}, token="tok")
    assert status == 200
    via_http = json.loads(body)["verdicts"]
    assert [(v["label"], v["evidence"], v["category"]) for v in via_http] == \
           [(v.label, v.evidence, v.category) for v in via_grpc]
    assert [v["score"] for v in via_http] == pytest.approx([v.score for v in via_grpc], abs=1e-6)
    # The original project's shape: one sequence as {"logs": [...]} on /detect.
    status, body = _http(server.http_port, "/detect", {"logs": picked[0].lines}, token="tok")
    assert status == 200 and json.loads(body)["verdicts"][0]["label"] == via_grpc[0].label

    status, body = _http(server.http_port, "/v1/detect", raw=b'{"logs": ["unterminated', token="tok")
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]
    status, body = _http(server.http_port, "/v1/detect", {"logs": []}, token="tok")
    assert status == 400 and "has no line" in json.loads(body)["error"]
    status, body = _http(server.http_port, "/v1/detect", {"logs": ["a"]})
    assert status == 401
    status, body = _http(server.http_port, "/healthz")
    assert status == 200
    status, body = _http(server.http_port, "/metrics", token="tok")
    assert status == 200 and b'logllm_requests_total{code="200",method="Detect",transport="http"} 2.0' in body


def test_client_retries_the_next_target_when_one_is_down(start_server, seed_sequences):
    import socket

    server = start_server()
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with InferenceClient([f"127.0.0.1:{dead}", f"127.0.0.1:{server.port}"], timeout_s=10) as client:
        for _ in range(3):  # round-robin lands on the dead target every other call
            assert len(client.detect([seed_sequences[0].lines, seed_sequences[1].lines])) == 2


def test_analyze_is_unimplemented_without_an_analyzer(start_server):
    server = start_server()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary("/logllm.v1.Inference/Analyze",
                                   request_serializer=pb.AnalyzeRequest.SerializeToString,
                                   response_deserializer=pb.AnalyzeResponse.FromString)
        with pytest.raises(grpc.RpcError) as caught:
            call(pb.AnalyzeRequest(sequence=pb.Sequence(lines=["x"])), timeout=5)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_analyze_explains_with_masked_evidence_end_to_end(start_server, seed_model_dir, seed_sequences):
    from logllm_plugin.detector import Detector
    from logllm_plugin.records import Verdict

    server = start_server(analysis=True, token="tok")
    lines = ["session opened for alice@example.com from 10.0.0.12", "query started",
             "ERROR: deadlock detected; transaction rolled back for alice@example.com"]
    verdict = Verdict(id="x", label="anomalous", score=0.93, category="anomaly", evidence=[2], novel_templates=1)
    with InferenceClient(f"127.0.0.1:{server.port}", token="tok") as client:
        explanation = client.analyze(lines, verdict)
        assert explanation["category"] == "database_error" and explanation["status"] == "ok"
        assert explanation["analyzer"] == "knowledge_base" and explanation["suggestion"]
        assert explanation["evidence"] == [{"index": 2, "line": "ERROR: deadlock detected; transaction rolled back for <EMAIL_1>"}]
        assert "alice@example.com" not in str(explanation) and "10.0.0.12" not in str(explanation)
        # Without a verdict the server detects first, with the same model as Detect.
        local = Detector.load(seed_model_dir, device="cpu")
        target, target_verdict = next((s, v) for s, v in zip(seed_sequences, local.detect(seed_sequences))
                                      if v.label == "anomalous")
        explained = client.analyze(target.lines)
        assert explained["status"] == "ok"
        # The detector's evidence lines, plus any the knowledge base matched elsewhere in the sequence.
        assert target_verdict.evidence and set(target_verdict.evidence) <= {e["index"] for e in explained["evidence"]}
        for e in explained["evidence"]:  # the very line, with only its personal data (user ids) masked
            assert masked_form_of(e["line"]).fullmatch(target.lines[e["index"]]), (e, target.lines[e["index"]])
            assert not re.search(r"user_\d+", e["line"]), e


def masked_form_of(masked: str) -> "re.Pattern[str]":
    """A regex an original line matches when `masked` is it with some parts replaced by <KIND_n>."""
    parts = re.split(r"<[A-Z]+_\d+>", masked)
    return re.compile(".+?".join(re.escape(p) for p in parts))


def test_reflection_lists_the_inference_service(start_server):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    server = start_server()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"logllm.v1.Inference", "grpc.health.v1.Health"} <= names


def test_async_client_gets_the_same_verdicts(start_server, seed_sequences):
    import asyncio

    from logllm_plugin.client import AsyncInferenceClient

    server = start_server(token="tok")
    picked = [s.lines for s in seed_sequences[:5]]
    with InferenceClient(f"127.0.0.1:{server.port}", token="tok") as client:
        expected = client.detect(picked)

    async def run():
        async with AsyncInferenceClient(f"127.0.0.1:{server.port}", token="tok") as client:
            return await asyncio.gather(*(client.detect([lines]) for lines in picked))

    got = [r[0] for r in asyncio.run(run())]
    assert [(v.label, v.evidence) for v in got] == [(v.label, v.evidence) for v in expected]
    assert [v.score for v in got] == pytest.approx([v.score for v in expected], abs=1e-6)


def test_the_model_threads_setting_holds_in_the_thread_that_runs_the_model(start_server, seed_sequences):
    import torch

    from logllm_plugin.client import InferenceClient

    server = start_server(threads=1)
    seen = []
    detector = server.core.detector
    real = detector.score_batch
    detector.score_batch = lambda batch: seen.append(torch.get_num_threads()) or real(batch)
    detector.verdict_cache.clear()
    with InferenceClient(f"127.0.0.1:{server.port}") as client:
        client.detect([seed_sequences[0].lines])
    assert seen == [1]  # in the batcher's thread, whatever the main thread uses
