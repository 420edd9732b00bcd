"""Bad input fuzzing over the inference server's wire handling: gRPC protos and the HTTP gateway.

The promise: any bytes a client sends get an answer with a defined status (OK, INVALID_ARGUMENT,
or 400/413 over HTTP), never INTERNAL/UNKNOWN/500 and never a dead server; a valid request gets
exactly one verdict per sequence, in order.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from logllm_plugin.proto.logllm.v1 import inference_pb2 as pb
from logllm_plugin.serving.grpc_service import _Malformed, tolerant_deserializer
from tests.reliability.conftest import fuzz

pytestmark = [pytest.mark.reliability, pytest.mark.server]

LIMITS = dict(max_lines_per_sequence=40, max_line_bytes=400, max_sequences_per_request=8, max_request_bytes=20_000)
DEEP = 50_000
MESSAGES = (pb.DetectRequest, pb.AnalyzeRequest, pb.ModelInfoRequest)
odd_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)  # what proto3 strings can carry
odd_line = st.one_of(odd_text, st.text(max_size=500), st.just(""), st.just("\x00\x1b[31m\r\x7f"))


@pytest.fixture(scope="module")
def server(seed_model_dir):
    from logllm_plugin.analyzers.service import AnalysisService
    from logllm_plugin.config import ServerConfig
    from logllm_plugin.detector import Detector
    from logllm_plugin.serving.server import InferenceServer

    srv = InferenceServer(ServerConfig(port=0, http_port=0, **LIMITS),
                          lambda: Detector.load(seed_model_dir, device="cpu"),
                          analysis_factory=lambda detector: AnalysisService(signature=detector.store_ids)).start()
    assert srv.wait_ready(120)
    channel = grpc.insecure_channel(f"127.0.0.1:{srv.port}")
    srv.test_channel = channel
    yield srv
    channel.close()
    srv.stop(grace_s=1)


def call_raw(server, method: str, payload: bytes, response_cls):
    call = server.test_channel.unary_unary(f"/logllm.v1.Inference/{method}", request_serializer=None,
                                           response_deserializer=response_cls.FromString)
    try:
        return grpc.StatusCode.OK, call(payload, timeout=20)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def still_serving(server) -> bool:
    code, response = call_raw(server, "Detect", pb.DetectRequest(sequences=[pb.Sequence(lines=["alive"])])
                              .SerializeToString(), pb.DetectResponse)
    return code == grpc.StatusCode.OK and len(response.verdicts) == 1


@fuzz(400)
@given(data=st.binary(max_size=3000), which=st.sampled_from(MESSAGES))
@example(data=b"\x0a\x05\x1a\x03\xff\xfe\xfd", which=pb.DetectRequest)  # invalid UTF-8 in a string field
@example(data=b"\x0a" * 2000, which=pb.AnalyzeRequest)  # nested length prefixes running off the end
def test_tolerant_deserializers_turn_any_bytes_into_a_message_or_a_reason(data, which):
    """Promise: the request deserializers never raise; bad bytes become a _Malformed with a reason."""
    result = tolerant_deserializer(which, max_bytes=2000)(data)
    if len(data) > 2000:
        assert isinstance(result, _Malformed) and "limit is 2000" in result.reason
    else:
        assert isinstance(result, (which, _Malformed))
        if isinstance(result, _Malformed):
            assert which.DESCRIPTOR.full_name in result.reason


@fuzz(80)
@given(data=st.binary(max_size=1500), method=st.sampled_from(["Detect", "Analyze", "ModelInfo"]))
@example(data=b"\x0a\x05\x1a\x03\xff\xfe\xfd", method="Detect")
@example(data=b"\x0a\x03\x0a\x01\x00", method="Analyze")
def test_arbitrary_bytes_on_every_method_get_a_defined_status(server, data, method):
    """Promise: whatever bytes arrive, Detect/Analyze/ModelInfo answer OK or INVALID_ARGUMENT (with
    a reason), never INTERNAL/UNKNOWN, and the server keeps serving."""
    response_cls = {"Detect": pb.DetectResponse, "Analyze": pb.AnalyzeResponse,
                    "ModelInfo": pb.ModelInfoResponse}[method]
    code, answer = call_raw(server, method, data, response_cls)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (code, answer)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert answer  # a reason, not a bare status


sequences = st.lists(st.builds(pb.Sequence, id=odd_text, key=odd_text, lines=st.lists(odd_line, max_size=45)),
                     max_size=10)


@fuzz(60)
@given(seqs=sequences)
def test_valid_detect_requests_with_odd_content_get_one_verdict_per_sequence(server, seqs):
    """Promise: a well-formed DetectRequest with odd lines (control characters, any Unicode, empty
    or long lines) is answered OK with one verdict per sequence in order, or INVALID_ARGUMENT naming
    the limit it breaks; never INTERNAL."""
    code, answer = call_raw(server, "Detect", pb.DetectRequest(sequences=seqs).SerializeToString(), pb.DetectResponse)
    if code == grpc.StatusCode.OK:
        assert [v.key for v in answer.verdicts] == [s.key for s in seqs]
        assert all(v.label in ("normal", "anomalous") and 0.0 <= v.score <= 1.0 for v in answer.verdicts)
        assert all(set(v.evidence) <= set(range(len(s.lines))) for v, s in zip(answer.verdicts, seqs))
    else:
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, answer)
        assert any(word in answer for word in ("no sequence", "no line", "whitespace-only", "limit", "longer than"))
    assert still_serving(server)


# ------------------------------------------------------------------------------------ HTTP gateway
def post(server, body: bytes):
    request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/v1/detect", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
                           lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                           max_leaves=15)
http_bodies = st.one_of(
    st.binary(max_size=2000),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"logs": st.lists(st.text(max_size=80), max_size=12)}).map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"sequences": st.lists(st.one_of(st.lists(st.text(max_size=40), max_size=5),
                                                           st.fixed_dictionaries({"lines": json_values, "id": json_values})),
                                                 max_size=5)}).map(lambda v: json.dumps(v).encode()),
)


@fuzz(80)
@given(body=http_bodies)
@example(body=b'{"logs": ' + b"[" * DEEP + b"]" * DEEP + b"}")  # regression: RecursionError gave a 500
@example(body=b'{"logs": ["\\ud800 lone surrogate", "ok"]}')
@example(body=b"\xff\xfe not UTF-8")
def test_http_detect_answers_any_body_with_200_or_a_4xx_reason(server, body):
    """Promise: POST /v1/detect with any body answers 200 with one verdict per sequence, or a 4xx
    with a JSON error saying what was wrong; never a 500."""
    status, payload = post(server, body)
    assert status in (200, 400, 413), (status, payload)
    if status == 200:
        sent = json.loads(body)
        expected = 1 if "logs" in sent else len(sent["sequences"])
        assert len(payload["verdicts"]) == expected
    else:
        assert payload["error"]
