"""What an SRE does first with a real `logllm-plugin serve` process (issue 16, items 1-3).

Clients here set NO deadline (a grpcio call without `timeout=`, as grpcurl and many Go/Java
clients do), send blank lines, probe health and reflection without the token, use a lower-case
`bearer` scheme, and scrape /metrics the way Prometheus would.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import grpc
import pytest

from tests.conftest import require

from logllm_plugin.proto.logllm.v1 import inference_pb2 as pb
from tests.integration.test_serve_process import ServeProcess

pytestmark = pytest.mark.server
TOKEN = "s3cret-wiring-token"
LINES = ["INFO dfs.DataNode: Receiving block blk_1 src: /10.0.0.1:50010",
         "INFO dfs.DataNode: Received block blk_1 of size 67108864 from /10.0.0.1"]


def _start(*args: str, env: dict | None = None) -> ServeProcess:
    old = dict(os.environ)
    os.environ.update(env or {})
    try:
        server = ServeProcess("--threads", "1", "--http-port", "0", *args)
    finally:
        os.environ.clear()
        os.environ.update(old)
    server.wait_serving()
    server.http_port = next(e["http_port"] for e in server.log if e.get("msg") == "listening")
    return server


@pytest.fixture(scope="module")
def open_server():
    server = _start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    token_file = tmp_path_factory.mktemp("wiring") / "token"
    token_file.write_text(TOKEN + "\n")
    server = _start("--token-file", str(token_file), "--metrics-port", "0")
    server.metrics_port = next(e["metrics_port"] for e in server.log if e.get("msg") == "listening")
    yield server
    server.stop()


def _unary(channel, method, request_cls, response_cls):
    return channel.unary_unary(f"/logllm.v1.Inference/{method}", request_serializer=request_cls.SerializeToString,
                               response_deserializer=response_cls.FromString)


def _http(port, path, body=None, authorization=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json"})
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


# -------------------------------------------------------------------- item 1: no deadline
def test_detect_without_a_deadline_is_answered(open_server):
    with grpc.insecure_channel(f"127.0.0.1:{open_server.port}") as channel:
        detect = _unary(channel, "Detect", pb.DetectRequest, pb.DetectResponse)
        response = detect(pb.DetectRequest(sequences=[pb.Sequence(lines=LINES, id="s1")]))  # no timeout=
    assert [v.id for v in response.verdicts] == ["s1"]
    assert response.verdicts[0].label in ("normal", "anomalous")


def test_analyze_without_a_deadline_is_answered(open_server):
    with grpc.insecure_channel(f"127.0.0.1:{open_server.port}") as channel:
        analyze = _unary(channel, "Analyze", pb.AnalyzeRequest, pb.AnalyzeResponse)
        response = analyze(pb.AnalyzeRequest(sequence=pb.Sequence(lines=LINES + ["ERROR disk full on /data"])))
    assert response.explanation.analyzer and response.explanation.summary


def test_a_call_without_a_deadline_gets_default_deadline_s():
    """With `server.default_deadline_s` far below one batch wait, a deadline-less call must time out
    with DEADLINE_EXCEEDED: proof that the default is what bounds it (not an overflow, not forever)."""
    server = _start("--max-wait-ms", "200", env={"LOGLLM_SERVER__DEFAULT_DEADLINE_S": "0.000001"})
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            detect = _unary(channel, "Detect", pb.DetectRequest, pb.DetectResponse)
            with pytest.raises(grpc.RpcError) as caught:
                detect(pb.DetectRequest(sequences=[pb.Sequence(lines=["a fresh line never seen 7731"])]))
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, caught.value.details()
    finally:
        server.stop()


GRPCURL = shutil.which("grpcurl") or os.path.expanduser("~/.cache/logllm-ci/gobin/grpcurl")


@pytest.fixture()
def grpcurl():
    """`make test` installs grpcurl (Go) into ~/.cache/logllm-ci/gobin; under CI=true it must be there."""
    require(os.path.exists(GRPCURL), "grpcurl: make test installs it (go install "
            "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.4 with GOBIN=~/.cache/logllm-ci/gobin)")
    return GRPCURL


def test_grpcurl_detect_with_its_default_no_deadline(open_server, grpcurl):
    body = json.dumps({"sequences": [{"lines": LINES, "id": "g1"}]})
    out = subprocess.run([grpcurl, "-plaintext", "-d", body, f"127.0.0.1:{open_server.port}",
                          "logllm.v1.Inference/Detect"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["verdicts"][0]["id"] == "g1"


# -------------------------------------------------------------------- item 3: blank lines
def test_blank_lines_are_skipped_counted_and_evidence_points_at_the_callers_lines(open_server):
    with grpc.insecure_channel(f"127.0.0.1:{open_server.port}") as channel:
        detect = _unary(channel, "Detect", pb.DetectRequest, pb.DetectResponse)
        clean = detect(pb.DetectRequest(sequences=[pb.Sequence(lines=LINES)]))
        padded, call = detect.with_call(pb.DetectRequest(sequences=[pb.Sequence(lines=["", LINES[0], "  \t", LINES[1], ""])]))
    assert padded.verdicts[0].score == pytest.approx(clean.verdicts[0].score, abs=1e-6)
    assert padded.verdicts[0].label == clean.verdicts[0].label
    mapping = {0: 1, 1: 3}  # clean index -> index in the padded request
    assert list(padded.verdicts[0].evidence) == [mapping[i] for i in clean.verdicts[0].evidence]
    assert dict(call.trailing_metadata()).get("logllm-skipped-empty-lines") == "3"


@pytest.mark.parametrize("lines", [[""], ["", "   ", "\t"]])
def test_a_sequence_of_only_blank_lines_is_refused_over_grpc_and_http(open_server, lines):
    with grpc.insecure_channel(f"127.0.0.1:{open_server.port}") as channel:
        detect = _unary(channel, "Detect", pb.DetectRequest, pb.DetectResponse)
        with pytest.raises(grpc.RpcError) as caught:
            detect(pb.DetectRequest(sequences=[pb.Sequence(lines=LINES), pb.Sequence(lines=lines, id="blank")]), timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sequence 1 (blank)" in caught.value.details() and "empty" in caught.value.details()
    status, body = _http(open_server.http_port, "/v1/detect", {"logs": lines})
    assert status == 400 and "empty or whitespace-only" in json.loads(body)["error"]


def test_http_reports_skipped_blank_lines_and_metrics_count_them(open_server):
    before = _metric_value(_http(open_server.http_port, "/metrics")[1], "logllm_skipped_empty_lines_total")
    status, body = _http(open_server.http_port, "/v1/detect", {"logs": [LINES[0], "", LINES[1]]})
    assert status == 200, body
    assert json.loads(body)["skipped_empty_lines"] == 1
    after = _metric_value(_http(open_server.http_port, "/metrics")[1], "logllm_skipped_empty_lines_total")
    assert after == before + 1


def _metric_value(text: str, name: str) -> float:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} not in /metrics"
    return values[0]


# -------------------------------------------------------------------- item 2: auth
def test_health_and_reflection_work_without_the_token(token_server):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with grpc.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service="logllm.v1.Inference"),
                                                          timeout=10).status
        assert status == health_pb2.HealthCheckResponse.SERVING
        database = ProtoReflectionDescriptorDatabase(channel)
        assert {"logllm.v1.Inference", "grpc.health.v1.Health"} <= set(database.get_services())
        assert database.FindFileContainingSymbol("logllm.v1.Inference").name.endswith("inference.proto")
        detect = _unary(channel, "Detect", pb.DetectRequest, pb.DetectResponse)
        with pytest.raises(grpc.RpcError) as caught:  # the model itself still needs the token
            detect(pb.DetectRequest(sequences=[pb.Sequence(lines=LINES)]), timeout=30)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive_over_grpc_and_http(token_server, scheme):
    with grpc.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        detect = _unary(channel, "Detect", pb.DetectRequest, pb.DetectResponse)
        response = detect(pb.DetectRequest(sequences=[pb.Sequence(lines=LINES)]),
                          metadata=(("authorization", f"{scheme} {TOKEN}"),))
    assert len(response.verdicts) == 1
    status, body = _http(token_server.http_port, "/v1/detect", {"logs": LINES}, authorization=f"{scheme} {TOKEN}")
    assert status == 200, body
    for wrong in (f"{scheme} {TOKEN}x", f"Basic {TOKEN}", TOKEN):
        assert _http(token_server.http_port, "/v1/detect", {"logs": LINES}, authorization=wrong)[0] == 401


def test_metrics_open_on_the_metrics_port_and_token_guarded_on_the_http_port(token_server):
    status, text = _http(token_server.metrics_port, "/metrics")
    assert status == 200 and "logllm_requests_total" in text
    assert _http(token_server.http_port, "/metrics")[0] == 401
    status, text = _http(token_server.http_port, "/metrics", authorization=f"Bearer {TOKEN}")
    assert status == 200 and "logllm_requests_total" in text


def _readme_block(heading: str, language: str) -> str:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split(f"```{language}\n")[1:]]
    assert blocks, f"README section {heading!r} has no {language} block"
    return blocks


def test_readme_scrape_configs_match_what_the_server_accepts():
    import yaml

    block = next(b for b in _readme_block("Serving", "yaml") if "scrape_configs" in b)
    jobs = yaml.safe_load("\n".join(line[2:] if line.startswith("  ") else line for line in block.splitlines()))
    jobs = jobs["scrape_configs"]
    assert any("authorization" not in job for job in jobs)  # the --metrics-port job: no token
    guarded = [job for job in jobs if "authorization" in job]
    assert guarded and guarded[0]["authorization"]["type"] == "Bearer" and guarded[0]["authorization"]["credentials_file"]


# -------------------------------------------------------------------- item 4: readiness
def test_readme_waits_for_healthz_so_its_curl_right_after_serve_succeeds():
    """The README's own commands, run as written right after `serve` starts (only the port changed)."""
    import time

    block = _readme_block("Serving", "bash")[0]
    wait = next(line for line in block.splitlines() if "/healthz" in line).split("  #", 1)[0]
    curl_lines = block.split("curl -s -X POST", 1)[1].split("\n")
    curl = "curl -s -X POST" + curl_lines[0].rstrip("\\") + " " + curl_lines[1].split("  #", 1)[0]
    server = ServeProcess("--threads", "1", "--http-port", "0")
    try:
        for _ in range(600):
            http_port = next((e["http_port"] for e in server.log if e.get("msg") == "listening"), None)
            if http_port:
                break
            time.sleep(0.05)
        assert http_port, server.log
        assert any(e.get("msg") != "serving" for e in server.log)
        done = subprocess.run(["bash", "-c", wait.replace("8080", str(http_port))], timeout=180,
                              capture_output=True, text=True)
        assert done.returncode == 0 and "SERVING" in done.stdout
        answer = subprocess.run(["bash", "-c", curl.replace("8080", str(http_port))], timeout=60,
                                capture_output=True, text=True)
        assert json.loads(answer.stdout)["verdicts"][0]["label"] in ("normal", "anomalous"), answer.stdout
    finally:
        server.stop()


def test_grpcurl_health_check_without_the_token(token_server, grpcurl):
    out = subprocess.run([grpcurl, "-plaintext", "-d", '{"service": "logllm.v1.Inference"}', f"127.0.0.1:{token_server.port}",
                          "grpc.health.v1.Health/Check"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "SERVING"


def test_the_client_answers_blank_only_sequences_itself_so_integrations_lose_nothing(open_server):
    """The bridge, SDK processor and ES annotator send batches through InferenceClient: one sequence
    of empty OTLP bodies must not turn the whole batch into INVALID_ARGUMENT."""
    from logllm_plugin.client import InferenceClient
    from logllm_plugin.records import LogSequence

    batch = [LINES, ["", "  "], LogSequence(id="blank-seq", lines=[""]), LINES[::-1]]
    with InferenceClient(f"127.0.0.1:{open_server.port}") as client:
        verdicts = client.detect(batch)
        alone = client.detect([LINES, LINES[::-1]])
    assert [v.id for v in verdicts] == ["0", "1", "blank-seq", "3"]
    assert [(v.label, v.score, v.evidence) for v in verdicts[1:3]] == [("normal", 0.0, [])] * 2
    assert [v.score for v in (verdicts[0], verdicts[3])] == pytest.approx([v.score for v in alone], abs=1e-6)
