"""Security checks: TLS when configured, tokens enforced, no credentials or personal data in logs
or explanations, model weights loaded from safetensors only (no pickle, no remote code, no hub).

What tests/integration/test_server.py already proves is not repeated here: gRPC Detect without or
with a wrong token (UNAUTHENTICATED), plaintext gRPC against a TLS port, client certificates, and
HTTP Detect without a token. This file covers the other methods and paths, the logs, and the
source-level rules.
"""
from __future__ import annotations

import ast
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
from tests.conftest import REPO
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
def test_every_grpc_method_but_health_needs_the_token_over_tls(tls_server):
    """Promise: Analyze, ModelInfo and reflection (not only Detect) answer UNAUTHENTICATED without
    the token or with a wrong one; with it they work; health needs none."""
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
            "reflection": lambda md: list(reflect.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10, metadata=md)),
        }
        for name, call in calls.items():
            for metadata in ((), (("authorization", f"Bearer {WRONG_TOKEN}"),), (("authorization", TOKEN),)):
                with pytest.raises(grpc.RpcError) as caught:
                    call(metadata)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, name
            assert call((("authorization", f"Bearer {TOKEN}"),)), name
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


# ------------------------------------------------------------------- model loading: safetensors only
SOURCE_DIRS = ("logllm_plugin", "collectors", "trainers")
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}
NON_WEIGHT_LOADERS = ("Tokenizer", "Config", "Processor", "FeatureExtractor", "GenerationConfig")


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def unsafe_loading(source: str, filename: str = "<source>") -> list[str]:
    """Every way `source` could load pickled or remote code; empty when it is safe by these rules:
    no pickle-family imports, no torch.load/torch.save/np.load(allow_pickle)/yaml.load, never
    trust_remote_code other than False, never safe_serialization=False, and every from_pretrained
    either local_files_only=True (+ use_safetensors=True for weights) or preceded in the same
    function by require_safetensors_weights (which rules out .bin files and the hub)."""
    tree = ast.parse(source, filename)
    problems = []
    guarded_functions = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(isinstance(n, ast.Call) and _dotted(n.func).endswith("require_safetensors_weights")
                   for n in ast.walk(fn)):
                guarded_functions.update(id(n) for n in ast.walk(fn))
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            problems += [f"{where}: import {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            problems.append(f"{where}: from {node.module} import ...")
        elif isinstance(node, ast.ImportFrom) and node.module == "torch" and any(a.name in ("load", "save") for a in node.names):
            problems.append(f"{where}: from torch import load/save")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name in ("torch.load", "torch.save", "torch.jit.load", "yaml.load", "yaml.unsafe_load",
                    "pandas.read_pickle", "pd.read_pickle"):
            problems.append(f"{where}: {name}()")
        if name in ("np.load", "numpy.load") and _is_true(_keyword(node, "allow_pickle")):
            problems.append(f"{where}: {name}(allow_pickle=True)")
        remote = _keyword(node, "trust_remote_code")
        if remote is not None and not (isinstance(remote, ast.Constant) and remote.value is False):
            problems.append(f"{where}: trust_remote_code={ast.unparse(remote)}")
        serialization = _keyword(node, "safe_serialization")
        if serialization is not None and not _is_true(serialization):
            problems.append(f"{where}: safe_serialization={ast.unparse(serialization)}")
        if name.endswith(".from_pretrained") and id(node) not in guarded_functions:
            receiver = name.rsplit(".", 1)[0]
            if not _is_true(_keyword(node, "local_files_only")):
                problems.append(f"{where}: {name}() without local_files_only=True")
            if not any(k in receiver for k in NON_WEIGHT_LOADERS) and not _is_true(_keyword(node, "use_safetensors")):
                problems.append(f"{where}: {name}() without use_safetensors=True")
    return problems


def test_the_scanner_flags_every_unsafe_loading_pattern():
    """Promise (about the checker itself): each forbidden pattern is reported, the safe forms are not."""
    unsafe = {
        "import pickle": "import pickle",
        "from joblib import load": "from joblib",
        "import torch\ntorch.load('w.bin')": "torch.load()",
        "from torch import load": "from torch import load",
        "import yaml\nyaml.load(s)": "yaml.load()",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)": "allow_pickle=True",
        "AutoModel.from_pretrained(p, local_files_only=True, use_safetensors=True, trust_remote_code=True)":
            "trust_remote_code=True",
        "AutoModel.from_pretrained(p, use_safetensors=True)": "without local_files_only=True",
        "AutoModel.from_pretrained(p, local_files_only=True)": "without use_safetensors=True",
        "PeftModel.from_pretrained(m, p)": "without local_files_only=True",
        "m.save_pretrained(p, safe_serialization=False)": "safe_serialization=False",
    }
    for source, expected in unsafe.items():
        found = unsafe_loading(source)
        assert any(expected in p for p in found), (source, found)
    safe = ("AutoTokenizer.from_pretrained(p, local_files_only=True)\n"
            "AutoModel.from_pretrained(p, local_files_only=True, use_safetensors=True, trust_remote_code=False)\n"
            "import yaml\nyaml.safe_load(s)\n"
            "def f(p):\n    require_safetensors_weights(p, 'adapter')\n    return PeftModel.from_pretrained(m, p)\n")
    assert unsafe_loading(safe) == []


def test_library_source_loads_models_from_local_safetensors_only():
    """Promise: nothing in logllm_plugin/, collectors/ or trainers/ can load pickled weights or remote
    code, or reach a model hub (rules in `unsafe_loading`)."""
    files = [p for d in SOURCE_DIRS for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 30  # the scan really ran over the tree
    problems = [p for f in files for p in unsafe_loading(f.read_text(encoding="utf-8"), str(f.relative_to(REPO)))]
    assert problems == []


# A pickle that writes a marker file when unpickled (protocol 0, written by hand: no pickle import).
def _booby_trapped_pickle(marker: Path) -> bytes:
    code = f"open({str(marker)!r}, 'w').write('unpickled')"
    return b"cbuiltins\nexec\n(V" + code.encode() + b"\ntR."


def _only_pickled(directory: Path, weights: str, *configs: str) -> Path:
    directory.mkdir(parents=True)
    for name in configs:
        (directory / name).write_text("{}")
    (directory / weights).write_bytes(_booby_trapped_pickle(directory.parent / "UNPICKLED"))
    return directory


def test_a_detector_directory_with_only_pickled_weights_is_refused_clearly(tmp_path):
    """Promise: a model directory holding pytorch_model.bin instead of model.safetensors is refused
    with a message naming the file and why, and the pickle is never opened."""
    from logllm_plugin.artifacts import ModelDirError
    from logllm_plugin.detector import Detector

    model = _only_pickled(tmp_path / "model", "pytorch_model.bin", "config.json", "detector.json", "templates.json")
    with pytest.raises(ModelDirError, match=r"missing model.safetensors.*pytorch_model.bin: pickle-format weights"):
        Detector.load(model, device="cpu")
    assert not (tmp_path / "UNPICKLED").exists()


def test_an_encoder_directory_with_only_pickled_weights_is_refused_clearly(tmp_path):
    """Promise: an encoder directory with only a .bin is refused (EncoderUnavailable) before
    transformers could fall back to torch.load."""
    from logllm_plugin.config import EncoderConfig
    from logllm_plugin.encoder import EncoderUnavailable, LineEncoder

    encoder_dir = _only_pickled(tmp_path / "encoder", "pytorch_model.bin", "config.json")
    with pytest.raises(EncoderUnavailable, match=r"no \.safetensors weights.*pytorch_model.bin"):
        LineEncoder(EncoderConfig(model_path=str(encoder_dir), device="cpu")).encode(["a template"])
    assert not (tmp_path / "UNPICKLED").exists()


@pytest.mark.parametrize("which", ["model", "adapter"])
def test_an_llm_or_adapter_directory_with_only_pickled_weights_is_refused_clearly(tmp_path, which):
    """Promise: the Qwen analyzer refuses a base model or a LoRA adapter stored as pickled .bin
    (peft would torch.load adapter_model.bin), with a message naming the file, before loading."""
    from logllm_plugin.analyzers.qwen import QwenUnavailable, load_chat_model

    base = tmp_path / "base"
    if which == "model":
        _only_pickled(base, "pytorch_model.bin", "config.json")
        adapter = None
    else:
        base.mkdir()
        (base / "config.json").write_text("{}")
        (base / "model.safetensors").write_bytes(b"")  # never read: the adapter check comes first
        adapter = _only_pickled(tmp_path / "adapter", "adapter_model.bin", "adapter_config.json")
    with pytest.raises(QwenUnavailable, match=rf"{which} directory .* no \.safetensors weights.*\.bin: pickle"):
        load_chat_model(base, adapter_dir=adapter, device="cpu")
    assert not (tmp_path / "UNPICKLED").exists()
