"""Security checks: TLS when configured, tokens enforced, no credentials or personal data in logs
or explanations (model loading, safetensors only: test_safetensors_only.py).

What tests/integration/test_server.py already proves is not repeated here: gRPC Detect without or
with a wrong token (UNAUTHENTICATED), plaintext gRPC against a TLS port, client certificates, and
HTTP Detect without a token. This file covers the other methods and paths, the logs, and the
explanations.
"""
from __future__ import annotations

import json
import logging
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from logllm_plugin.logfmt import JsonFormatter
from logllm_plugin.proto.logllm.v1 import inference_pb2 as pb
from tests.integration.conftest import make_test_pki
from tests.reliability.conftest import fuzz

pytestmark = pytest.mark.reliability

TOKEN = "tok-7Hq2xZpL9wV4"
WRONG_TOKEN = "wrong-3RkP8sYd1"  # someone's mistyped credential is a credential too
PII_LINES = ["session opened for alice@example.com from 10.0.0.12", "query started",
             "ERROR: auth failed password=Hunter2Secret for user=alice token=abcd1234efgh5678",
             "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlMTIz"]
PII_VALUES = ["alice@example.com", "10.0.0.12", "Hunter2Secret", "abcd1234efgh5678", "eyJhbGciOiJIUzI1NiJ9"]


# ------------------------------------------------------------------------------ a server, logged
class Captured(logging.Handler):
    """Every log record of the process, formatted the way `serve` writes them (extras included)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())

    def emit(self, record):
        self.lines.append(self.format(record))


@pytest.fixture()
def captured_logs():
    handler, root = Captured(), logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(before)


@pytest.fixture()
def tls_server(seed_model_dir, tmp_path):
    from logllm_plugin.analyzers.service import AnalysisService
    from logllm_plugin.config import ServerConfig
    from logllm_plugin.detector import Detector
    from logllm_plugin.serving.server import InferenceServer

    pki = make_test_pki(tmp_path)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = ServerConfig(port=0, http_port=0, token_file=str(token_file), tls_cert=str(pki["server_cert"]),
                          tls_key=str(pki["server_key"]))
    server = InferenceServer(config, lambda: Detector.load(seed_model_dir, device="cpu"),
                             analysis_factory=lambda d: AnalysisService(signature=d.store_ids)).start()
    assert server.wait_ready(120)
    server.pki = pki
    yield server
    server.stop(grace_s=1)


def https(server, path, body=None, token=None, context=None):
    request = urllib.request.Request(f"https://localhost:{server.http_port}{path}",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    if token:
        request.add_header("Authorization", token if token.startswith(("Bearer", "bearer", "Basic")) else f"Bearer {token}")
    context = context or ssl.create_default_context(cafile=str(server.pki["ca"]))
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.mark.server
def test_the_http_gateway_of_a_tls_server_refuses_plaintext_and_enforces_the_token(tls_server):
    """Promise: with TLS configured the HTTP gateway speaks only TLS (a plaintext request gets no
    HTTP answer), and every path but /healthz needs the bearer token: missing, wrong, in the wrong
    scheme or in the URL it is refused (401; 404 for a detect path with a query)."""
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):  # plaintext: no HTTP response
        urllib.request.urlopen(f"http://127.0.0.1:{tls_server.http_port}/healthz", timeout=5).read()
    assert https(tls_server, "/healthz")[0] == 200  # probes stay open
    body = {"logs": ["a line", "another line"]}
    for path, payload in (("/v1/detect", body), ("/detect", body), ("/metrics", None), ("/v1/model-info", None)):
        for token in (None, WRONG_TOKEN, f"Basic {TOKEN}", f"bearer{TOKEN}"):
            status, answer = https(tls_server, path, payload, token=token)
            assert status == 401, (path, token, status)
            assert TOKEN not in answer.decode()
        assert https(tls_server, f"{path}?token={TOKEN}", payload)[0] in (401, 404)  # a token in the URL: refused
        assert https(tls_server, path, payload, token=TOKEN)[0] == 200


@pytest.mark.server
def test_every_grpc_method_but_health_and_reflection_needs_the_token_over_tls(tls_server):
    """Promise: Analyze and ModelInfo (not only Detect) answer UNAUTHENTICATED without the token or
    with a wrong one; with it they work; health and reflection (probes, grpcurl) need none."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    creds = grpc.ssl_channel_credentials(root_certificates=Path(tls_server.pki["ca"]).read_bytes())
    with grpc.secure_channel(f"localhost:{tls_server.port}", creds) as channel:
        analyze = channel.unary_unary("/logllm.v1.Inference/Analyze", request_serializer=pb.AnalyzeRequest.SerializeToString,
                                      response_deserializer=pb.AnalyzeResponse.FromString)
        info = channel.unary_unary("/logllm.v1.Inference/ModelInfo", request_serializer=pb.ModelInfoRequest.SerializeToString,
                                   response_deserializer=pb.ModelInfoResponse.FromString)
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        calls = {
            "Analyze": lambda md: analyze(pb.AnalyzeRequest(sequence=pb.Sequence(lines=PII_LINES)), timeout=10, metadata=md),
            "ModelInfo": lambda md: info(pb.ModelInfoRequest(), timeout=10, metadata=md),
        }
        for name, call in calls.items():
            for metadata in ((), (("authorization", f"Bearer {WRONG_TOKEN}"),), (("authorization", TOKEN),)):
                with pytest.raises(grpc.RpcError) as caught:
                    call(metadata)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert call((("authorization", f"Bearer {TOKEN}"),)), name
        listed = list(reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
        assert "logllm.v1.Inference" in {s.name for s in listed[0].list_services_response.service}
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
        assert status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.server
def test_tokens_and_personal_data_never_reach_the_server_logs(seed_model_dir, tmp_path, captured_logs):
    """Promise: a server run with a token (start, calls with the right and a wrong token over gRPC and
    HTTP, Analyze on lines full of personal data, stop) logs neither token, nor any personal value
    from the lines, at any level down to DEBUG, extras included; and explanations are masked."""
    from logllm_plugin.analyzers.service import AnalysisService
    from logllm_plugin.client import InferenceClient
    from logllm_plugin.config import ServerConfig
    from logllm_plugin.detector import Detector
    from logllm_plugin.serving.server import InferenceServer

    server = InferenceServer(ServerConfig(port=0, http_port=0, token=TOKEN),
                             lambda: Detector.load(seed_model_dir, device="cpu"),
                             analysis_factory=lambda d: AnalysisService(signature=d.store_ids)).start()
    try:
        assert server.wait_ready(120)
        target = f"127.0.0.1:{server.port}"
        with InferenceClient(target, token=WRONG_TOKEN, timeout_s=5) as client:
            with pytest.raises(grpc.RpcError):
                client.detect([PII_LINES])
        with InferenceClient(target, token=TOKEN) as client:
            assert client.detect([PII_LINES])[0].label in ("normal", "anomalous")
            explanation = client.analyze(PII_LINES)
        for token in (WRONG_TOKEN, TOKEN):
            request = urllib.request.Request(f"http://127.0.0.1:{server.http_port}/v1/detect",
                                             data=json.dumps({"logs": PII_LINES}).encode(),
                                             headers={"Authorization": f"Bearer {token}"})
            try:
                urllib.request.urlopen(request, timeout=10).read()
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
        with pytest.raises(grpc.RpcError):  # an Analyze that fails validation must not echo its lines either
            with InferenceClient(target, token=TOKEN) as client:
                client.analyze(["x" * (2 << 20)] + PII_LINES)
    finally:
        server.stop(grace_s=1)
    text = "\n".join(captured_logs)
    assert any('"msg": "serving"' in line for line in captured_logs)  # the capture saw the server's logs
    for secret in (TOKEN, WRONG_TOKEN, *PII_VALUES):
        assert secret not in text, f"{secret!r} was logged"
        assert secret not in json.dumps(explanation)


def test_config_errors_never_echo_a_credential_and_env_tokens_stay_strings():
    """Promise: a mistyped credential setting is reported by name and type, never by value; a
    digits-only token from the environment is taken as given (not parsed as a number)."""
    from logllm_plugin.config import ConfigError, load_config

    for value in (1234567890123, 3.14159, True, ["secret-in-a-list"]):
        with pytest.raises(ConfigError) as caught:
            load_config(overrides={"server": {"token": value}})
        assert "server.token" in str(caught.value)
        assert str(value) not in str(caught.value) and "secret-in-a-list" not in str(caught.value)
    assert load_config(environ={"LOGLLM_SERVER__TOKEN": "0012345678"}).server.token == "0012345678"


# ------------------------------------------------------------------ personal data in explanations
class EchoingAnalyzer:
    """A worst-case primary analyzer: repeats what it was given in every field of its answer."""

    name = "echo"

    def explain_batch(self, items):
        from logllm_plugin.analyzers.base import EvidenceLine, Explanation

        return [Explanation("anomaly", " | ".join(item.lines), "check " + item.lines[-1],
                            [EvidenceLine(i, line) for i, line in enumerate(item.lines)], self.name) for item in items]


class LeakyCrashingAnalyzer:
    """A primary analyzer whose error message quotes its input (as tracebacks of real models do)."""

    name = "crashing"

    def explain_batch(self, items):
        raise RuntimeError(f"cannot parse model output for {items[0].lines}")


secret_word = st.text(alphabet="abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=10, max_size=16)
personal = st.fixed_dictionaries({
    "email": st.emails().filter(lambda e: len(e) > 6 and e.isascii()),
    "ip": st.ip_addresses(v=4).map(str).filter(lambda ip: ip.count(".") == 3 and len(ip) >= 9),
    "password": secret_word.map(lambda w: "Pw" + w),
    "token": secret_word.map(lambda w: "Tk" + w),
    "aws": st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16).map(lambda w: "AKIA" + w),
    "user": secret_word.map(lambda w: "u" + w.lower()),
})


@fuzz(60)
@given(values=personal, primary=st.sampled_from(["knowledge_base", "echo", "crashing"]))
def test_no_personal_value_reaches_an_explanation_or_the_analyzer_logs(values, primary, caplog):
    """Promise: e-mails, IPv4 addresses, passwords, tokens, AWS key ids and user names in the input
    never appear in an explanation (summary, suggestion, evidence) or in the analyzer path's logs,
    whichever analyzer answers: the knowledge base, one that echoes its input, or one that crashes
    quoting its input."""
    from logllm_plugin.analyzers.service import AnalysisService
    from logllm_plugin.records import Verdict

    lines = [f"login ok for {values['email']} from {values['ip']}",
             f"ERROR: database connection refused password={values['password']} user={values['user']}",
             f"retrying with api_key={values['aws']} and Authorization: Bearer {values['token']}"]
    analyzer = {"knowledge_base": None, "echo": EchoingAnalyzer(), "crashing": LeakyCrashingAnalyzer()}[primary]
    service = AnalysisService(primary=analyzer)
    verdict = Verdict(id="s", label="anomalous", score=0.9, category="anomaly", evidence=[1], novel_templates=0)
    with caplog.at_level(logging.DEBUG):
        explanation = service.explain([lines], [verdict])[0]
    published = json.dumps(explanation.to_dict()) + "\n".join(r.getMessage() for r in caplog.records)
    for kind, value in values.items():
        assert value not in published, f"{kind} {value!r} leaked"
    caplog.clear()
