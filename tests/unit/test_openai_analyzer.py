"""The OpenAI-compatible analyzer against a stub chat-completions server on loopback (fault cases).

The stub answers per scripted behaviour: a valid answer, an invalid one then a valid repair,
HTTP 500, a body that is not a chat completion, a hang past the timeout. The API key comes from
the environment only, reaches the server as a bearer token, and appears in no log record and no
explanation.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from logllm_plugin.analyzers.base import AnalysisItem
from logllm_plugin.analyzers.knowledge_base import KnowledgeBaseAnalyzer
from logllm_plugin.analyzers.openai_compat import OpenAIAnalyzer
from logllm_plugin.records import Verdict

SECRET = "sk-test-0123456789abcdef-never-log-me"
VALID = {"category": "timeout", "summary": "The payment call timed out.", "suggestion": "Check the gateway.",
         "evidence": [1]}


class Stub:
    def __init__(self, script):
        self.script = list(script)  # one behaviour per request, in order
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                kind, payload = stub.script.pop(0) if stub.script else ("answer", VALID)
                if kind == "hang":
                    time.sleep(payload)
                    return
                if kind == "status":
                    self.send_response(payload)
                    self.end_headers()
                    return
                if kind == "raw":
                    data = payload.encode()
                else:
                    content = payload if isinstance(payload, str) else json.dumps(payload)
                    data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_factory():
    made = []

    def make(*script):
        stub = Stub(script)
        made.append(stub)
        return stub

    yield make
    for stub in made:
        stub.close()


def _item():
    lines = ["request received", "payment gateway timed out after 3000 ms", "responded 504"]
    return AnalysisItem(lines, Verdict(id="x", label="anomalous", score=0.9, category="anomaly", evidence=[1],
                                       novel_templates=0))


def _analyzer(url, timeout_s=5.0):
    return OpenAIAnalyzer(url, "logllm", fallback=KnowledgeBaseAnalyzer(semantic=False), api_key_env="LOGLLM_TEST_KEY",
                          timeout_s=timeout_s)


def test_a_valid_answer_is_used_and_the_key_is_sent_as_bearer_only(stub_factory, monkeypatch, caplog):
    monkeypatch.setenv("LOGLLM_TEST_KEY", SECRET)
    stub = stub_factory(("answer", VALID))
    caplog.set_level(logging.DEBUG)
    [out] = _analyzer(stub.url).explain_batch([_item()])
    assert (out.status, out.analyzer, out.category) == ("ok", "openai", "timeout")
    assert [(e.index, e.line) for e in out.evidence] == [(1, _item().lines[1])]
    [request] = stub.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == f"Bearer {SECRET}"
    assert request["body"]["model"] == "logllm" and request["body"]["temperature"] == 0
    assert SECRET not in caplog.text and SECRET not in json.dumps(out.to_dict())


def test_an_invalid_answer_gets_one_repair(stub_factory):
    stub = stub_factory(("answer", "here you go: not json"), ("answer", VALID))
    [out] = _analyzer(stub.url).explain_batch([_item()])
    assert out.status == "ok" and len(stub.requests) == 2
    assert "That answer is invalid" in stub.requests[1]["body"]["messages"][-1]["content"]


@pytest.mark.parametrize("script, status", [
    ([("answer", "nope"), ("answer", "still nope")], "invalid_output"),
    ([("status", 500)], "unavailable"),
    ([("raw", "<html>proxy error</html>")], "unavailable"),
    ([("hang", 3.0)], "timeout"),
], ids=["invalid_twice", "http_500", "not_a_chat_completion", "hang"])
def test_faults_fall_back_to_the_knowledge_base_with_the_reason(stub_factory, monkeypatch, caplog, script, status):
    monkeypatch.setenv("LOGLLM_TEST_KEY", SECRET)
    stub = stub_factory(*script)
    started = time.monotonic()
    [out] = _analyzer(stub.url, timeout_s=1.0).explain_batch([_item()])
    assert time.monotonic() - started < 2.5  # the hang is cut at the timeout, not waited out
    assert (out.status, out.analyzer, out.category) == (status, "knowledge_base", "timeout")
    assert SECRET not in caplog.text


def test_a_refused_connection_is_unavailable_and_the_config_needs_url_and_model():
    from logllm_plugin.config import AnalysisConfig

    [out] = _analyzer("http://127.0.0.1:9/v1", timeout_s=2.0).explain_batch([_item()])
    assert out.status == "unavailable"
    assert any("base_url and analysis.model" in p for p in AnalysisConfig(analyzer="openai").problems())
    with pytest.raises(ValueError, match="http"):
        OpenAIAnalyzer("ftp://x", "m", fallback=KnowledgeBaseAnalyzer(semantic=False))


@pytest.mark.parametrize("dialect", ["none", "json_schema", "json_object"])
def test_response_format_asks_for_the_answer_schema_in_the_servers_dialect(stub_factory, dialect):
    from logllm_plugin.analyzers.prompt import ANSWER_KEYS
    from logllm_plugin.config import AnalysisConfig

    stub = stub_factory(("answer", VALID))
    analyzer = OpenAIAnalyzer(stub.url, "logllm", fallback=KnowledgeBaseAnalyzer(semantic=False), api_key_env=None,
                              timeout_s=5.0, response_format=dialect)
    [out] = analyzer.explain_batch([_item()])
    assert out.status == "ok"
    body = stub.requests[0]["body"]
    if dialect == "none":
        assert "response_format" not in body
        return
    field = body["response_format"]
    schema = field["json_schema"]["schema"] if dialect == "json_schema" else field["schema"]
    assert field["type"] == dialect
    assert schema["required"] == list(ANSWER_KEYS) == list(schema["properties"])  # the order the model writes
    assert schema["properties"]["evidence"]["items"]["maximum"] == 2  # the item has 3 lines
    assert schema["additionalProperties"] is False
    with pytest.raises(ValueError, match="response_format"):
        OpenAIAnalyzer(stub.url, "m", fallback=KnowledgeBaseAnalyzer(semantic=False), response_format="grammar")
    assert any("response_format" in p for p in AnalysisConfig(response_format="grammar").problems())
