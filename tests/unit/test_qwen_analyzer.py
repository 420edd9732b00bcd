"""The analyzer prompt, the strict answer check, and QwenAnalyzer's fallbacks on a tiny random model."""
from __future__ import annotations

import dataclasses
import json
import time

import pytest

from logllm_plugin.analyzers.base import AnalysisItem, Explanation
from logllm_plugin.analyzers.prompt import (InvalidAnswer, build_messages, parse_answer,
                                            repair_messages)
from logllm_plugin.records import Verdict
from tests.conftest import require_module

VALID = {"category": "resource_exhaustion", "summary": "The heap ran out.", "suggestion": "Raise -Xmx.",
         "evidence": [0, 2]}


class RecordingFallback:
    """A stand-in for the knowledge-base analyzer: names each item's verdict id so order can be checked."""

    name = "test_fallback"

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[int] = []
        self.fail = fail

    def explain_batch(self, items):
        self.calls.append(len(items))
        if self.fail:
            raise RuntimeError("fallback broken")
        return [Explanation(category=f"kb-{item.verdict.id}", summary="kb summary", suggestion="kb suggestion",
                            analyzer=self.name) for item in items]


def _item(n_lines: int = 4, vid: str = "0", evidence=(1,)) -> AnalysisItem:
    lines = [f"[ERROR] worker <IP> failed step {i} for <EMAIL>" for i in range(n_lines)]
    return AnalysisItem(lines=lines, verdict=Verdict(id=vid, label="anomalous", score=0.93, category="anomaly",
                                                     evidence=list(evidence), novel_templates=0))


# ------------------------------------------------------------------------------ parse_answer
def test_parse_answer_accepts_a_valid_object_and_normalises_it():
    parsed = parse_answer("  " + json.dumps({**VALID, "summary": " The heap ran out. "}) + "\n", n_lines=3)
    assert parsed == VALID
    assert parse_answer("```json\n" + json.dumps(VALID) + "\n```", n_lines=3) == VALID
    assert parse_answer(json.dumps({**VALID, "evidence": []}), n_lines=3)["evidence"] == []


@pytest.mark.parametrize("text, message", [
    ("", "empty"),
    ("The heap ran out.", "not valid JSON"),
    (json.dumps(VALID) + " trailing words", "not valid JSON"),
    (json.dumps([VALID]), "expected a JSON object"),
    (json.dumps({k: v for k, v in VALID.items() if k != "suggestion"}), "missing key"),
    (json.dumps({**VALID, "severity": "high"}), "unexpected key"),
    (json.dumps({**VALID, "category": 7}), '"category" must be a string'),
    (json.dumps({**VALID, "summary": "   "}), '"summary" must not be empty'),
    (json.dumps({**VALID, "suggestion": "x" * 601}), "more than 600"),
    (json.dumps({**VALID, "category": "a\nb"}), "single line"),
    (json.dumps({**VALID, "evidence": "0, 2"}), "must be a list"),
    (json.dumps({**VALID, "evidence": [0, 3]}), "outside the sequence"),
    (json.dumps({**VALID, "evidence": [-1]}), "outside the sequence"),
    (json.dumps({**VALID, "evidence": [True]}), "must hold integers"),
    (json.dumps({**VALID, "evidence": [1.0]}), "must hold integers"),
    (json.dumps({**VALID, "evidence": [1, 1]}), "repeats"),
    ('{"category": "a", "category": "b", "summary": "s", "suggestion": "t", "evidence": []}', "duplicate key"),
    ("x" * 5000, "more than 4000"),
])
def test_parse_answer_rejects_each_kind_of_invalid_answer(text, message):
    with pytest.raises(InvalidAnswer, match=message):
        parse_answer(text, n_lines=3)


# ------------------------------------------------------------------------------------ prompt
def test_prompt_holds_the_masked_lines_and_nothing_else_from_the_item():
    item = _item(4, vid="alice@example.com/trace-9")
    item.lines[3] = "multi\nline <EMAIL>"
    messages = build_messages(item)
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    for i, line in enumerate(item.lines[:3]):
        assert f"\n{i}: {line}\n" in user
    assert "3: multi\\nline <EMAIL>" in user  # an embedded newline cannot fake a numbered line
    assert "alice" not in user and "trace-9" not in user  # the sequence id never reaches the model
    assert "score 0.93" in user and "detector category anomaly" in user and "weighted most: 1" in user
    # The rest is fixed text: another item with other lines and the same verdict differs only in the lines.
    first, other = _item(4, vid="a"), AnalysisItem(lines=[f"other {i}" for i in range(4)], verdict=item.verdict)
    first.verdict = item.verdict

    def without_lines(it: AnalysisItem) -> str:
        text = build_messages(it)[1]["content"]
        for i, line in enumerate(it.lines):
            text = text.replace(f"{i}: {line}", f"{i}: <LINE>")
        return text

    assert without_lines(first) == without_lines(other)


def test_prompt_lines_drop_timestamps_and_long_hex_ids_but_evidence_quotes_keep_them():
    from logllm_plugin.analyzers.prompt import compact_line

    iso = "2026-03-02T09:00:18.653Z ERROR  billing [trace=521b18a91ab1c42f] db pool exhausted (20/20)"
    assert compact_line(iso) == "ERROR billing [trace=<hex>] db pool exhausted (20/20)"
    assert compact_line("081109 203615 148 INFO dfs.DataNode: blk_-1608999687919862906 served") == (
        "INFO dfs.DataNode: blk_-1608999687919862906 served")  # decimal ids stay: they are not hex
    assert compact_line("Jun 14 15:16:01 combo sshd[19939]: authentication failure") == (
        "combo sshd[19939]: authentication failure")
    assert compact_line("deadline 2026-03-02 is fine; caffe is a word") == "deadline 2026-03-02 is fine; caffe is a word"
    item = _item(3)
    item.lines[1] = iso
    # The prompt also drops id fields that are only a placeholder (ids the summary may quote stay).
    assert "\n1: ERROR billing db pool exhausted (20/20)\n" in build_messages(item)[1]["content"]
    from logllm_plugin.analyzers.prompt import prompt_line

    assert prompt_line("WARN api span_id=<hex> order=72979298 retry 3 of 5 after 250 ms") == (
        "WARN api order=72979298 retry 3 of 5 after 250 ms")
    assert prompt_line("x" * 500, 40) == "x" * 39 + "…"


def test_repeated_lines_cost_a_reference_not_their_tokens_again():
    item = _item(5, evidence=(3,))
    item.lines[:] = ["INFO heartbeat ok", "ERROR disk full", "INFO heartbeat ok", "ERROR disk full", "INFO done"]
    user = build_messages(item)[1]["content"]
    assert "\n0: INFO heartbeat ok\n1: ERROR disk full\n2: (same as 0)\n3: (same as 1)\n4: INFO done" in user


def test_long_sequences_keep_the_evidence_lines_and_mark_omissions():
    user = build_messages(_item(200, evidence=(150,)), max_lines=10)[1]["content"]
    numbered = [ln for ln in user.split("\n") if ln.split(":", 1)[0].isdigit()]
    assert len(numbered) == 10
    assert any(ln.startswith("150: ") for ln in numbered)
    assert "omitted]" in user


def test_repair_prompt_carries_the_bad_answer_and_the_error():
    messages = build_messages(_item())
    repaired = repair_messages(messages, "not json", "not valid JSON (x at 0)")
    assert repaired[:2] == messages
    assert repaired[2] == {"role": "assistant", "content": "not json"}
    assert repaired[3]["role"] == "user" and "not valid JSON (x at 0)" in repaired[3]["content"]


# ----------------------------------------------------------------------------- QwenAnalyzer
torch = require_module("torch", "torch (a core dependency)")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny_dir and one_thread: tests/unit/conftest.py


def test_a_tiny_random_models_answers_are_repaired_once_then_fall_back_as_invalid_output(tiny_dir, monkeypatch):
    """The real tiny model generates (a spy records what it said): 12 new tokens cannot hold the
    answer schema's JSON. With max_new_tokens 12 every answer is cut there: no repair, invalid_output
    at once. With room to end by itself (a stop token), each item is asked once more with its own
    bad answer, then falls back."""
    from logllm_plugin.analyzers import qwen
    from logllm_plugin.analyzers.qwen import QwenAnalyzer

    rounds = []
    real_generate = qwen.generate_answers

    def spy(model, tokenizer, conversations, **kwargs):
        generated = real_generate(model, tokenizer, conversations, **kwargs)
        rounds.append([(list(c), g.text) for c, g in zip(conversations, generated)])
        return generated

    monkeypatch.setattr(qwen, "generate_answers", spy)
    fallback = RecordingFallback()
    analyzer = QwenAnalyzer(tiny_dir, fallback=fallback, device="cpu", max_new_tokens=12, timeout_s=120,
                            batch_size=3)
    items = [_item(3 + i, vid=str(i)) for i in range(3)]
    explanations = analyzer.explain_batch(items)
    assert [(e.status, e.analyzer, e.category) for e in explanations] == [
        ("invalid_output", "test_fallback", f"kb-{i}") for i in range(3)]
    assert fallback.calls == [3]
    assert len(rounds) == 1  # cut at 12 tokens: no repair
    # Treat the tiny model's stop-free 12 tokens as an answer that ended by itself: now it is repaired.
    rounds.clear()

    def finished_spy(model, tokenizer, conversations, **kwargs):
        return [dataclasses.replace(g, finished=True) for g in spy(model, tokenizer, conversations, **kwargs)]

    monkeypatch.setattr(qwen, "generate_answers", finished_spy)
    explanations = analyzer.explain_batch(items)
    assert [e.status for e in explanations] == ["invalid_output"] * 3
    first, repair = rounds  # one batch of three, then one batch of three repairs
    assert len(first) == len(repair) == 3
    for (conversation, text), (repaired, _) in zip(first, repair):
        assert len(conversation) == 2 and repaired[:2] == conversation
        assert repaired[2] == {"role": "assistant", "content": text}  # the model's own bad answer
        assert "That answer is invalid" in repaired[3]["content"]
    assert analyzer.explain_batch([]) == []


def test_a_tiny_timeout_returns_timeout_quickly(tiny_dir):
    from logllm_plugin.analyzers.qwen import QwenAnalyzer

    analyzer = QwenAnalyzer(tiny_dir, fallback=RecordingFallback(), device="cpu", max_new_tokens=4000,
                            timeout_s=0.05, batch_size=2)
    analyzer.load()  # the timeout bounds explaining, not the one-off load
    started = time.monotonic()
    explanations = analyzer.explain_batch([_item(vid=str(i)) for i in range(4)])
    assert time.monotonic() - started < 3.0
    assert [e.status for e in explanations] == ["timeout"] * 4
    assert [e.category for e in explanations] == [f"kb-{i}" for i in range(4)]


def test_missing_model_dir_gives_unavailable_for_every_item(tmp_path):
    from logllm_plugin.analyzers.qwen import QwenAnalyzer, QwenUnavailable

    fallback = RecordingFallback()
    analyzer = QwenAnalyzer(tmp_path / "no_model", fallback=fallback, device="cpu")
    explanations = analyzer.explain_batch([_item(vid="a"), _item(vid="b")])
    assert [(e.status, e.analyzer, e.category) for e in explanations] == [
        ("unavailable", "test_fallback", "kb-a"), ("unavailable", "test_fallback", "kb-b")]
    with pytest.raises(QwenUnavailable, match="does not exist"):
        analyzer.load()


def test_a_failing_fallback_still_gives_explanations_from_the_verdict(tmp_path):
    from logllm_plugin.analyzers.qwen import QwenAnalyzer

    analyzer = QwenAnalyzer(tmp_path / "no_model", fallback=RecordingFallback(fail=True), device="cpu")
    (explanation,) = analyzer.explain_batch([_item(evidence=(2,))])
    assert explanation.status == "unavailable" and explanation.analyzer == "test_fallback"
    assert [e.index for e in explanation.evidence] == [2]


def test_an_invalid_answer_gets_one_repair_then_falls_back(monkeypatch, tmp_path):
    """Scripted generations: valid at once, valid after the repair, invalid twice."""
    from logllm_plugin.analyzers import qwen
    from logllm_plugin.analyzers.qwen import Generated, QwenAnalyzer

    scripts = {"3 lines, anomaly": [json.dumps(VALID)],
               "4 lines, anomaly": ["oops", json.dumps({**VALID, "evidence": [1]})],
               "5 lines, anomaly": ["oops", "still not json"],
               "6 lines, anomaly": ['{"category":"x","evidence":[0],"summary":"and then and then']}
    attempts_seen: list[int] = []

    def fake_generate(model, tokenizer, conversations, **kwargs):
        texts = []
        for conversation in conversations:
            attempt = (len(conversation) - 2) // 2  # a repair adds the bad answer and the error
            if attempt:
                assert "That answer is invalid" in conversation[-1]["content"]
            attempts_seen.append(attempt)
            key = next(k for k in scripts if k in conversation[1]["content"])
            texts.append(scripts[key][attempt])
        # The six-line item's answer is cut at max_new_tokens (it never ended by itself).
        return [Generated(text=t, finished="and then" not in t, timed_out=False) for t in texts]

    monkeypatch.setattr(qwen, "generate_answers", fake_generate)
    analyzer = QwenAnalyzer(tmp_path, fallback=RecordingFallback(), device="cpu", batch_size=8)
    analyzer._model, analyzer._tokenizer = object(), object()  # loaded; generation is scripted
    items = [_item(3, vid="x"), _item(4, vid="y"), _item(5, vid="z"), _item(6, vid="w")]
    ok, fixed, bad, rambling = analyzer.explain_batch(items)
    assert (ok.status, ok.analyzer, ok.category) == ("ok", "qwen", "resource_exhaustion")
    assert [(e.index, e.line) for e in ok.evidence] == [(0, items[0].lines[0]), (2, items[0].lines[2])]
    assert (fixed.status, [e.index for e in fixed.evidence]) == ("ok", [1])
    assert (bad.status, bad.analyzer, bad.category) == ("invalid_output", "test_fallback", "kb-z")
    assert rambling.status == "invalid_output"
    # Exactly one repair for each invalid answer that ended by itself; none for the one cut at
    # max_new_tokens (a retry under the same limit rambles as long again).
    assert sorted(attempts_seen) == [0, 0, 0, 0, 1, 1]


def test_constructor_rejects_impossible_arguments(tmp_path, monkeypatch):
    from logllm_plugin.analyzers.qwen import QwenAnalyzer, QwenUnavailable

    fallback = RecordingFallback()
    for bad in ({"batch_size": 0}, {"timeout_s": 0}, {"max_new_tokens": 0}, {"device": "gpu"}):
        with pytest.raises(ValueError):
            QwenAnalyzer(tmp_path, fallback=fallback, **bad)
    with pytest.raises(ValueError, match="fallback"):
        QwenAnalyzer(tmp_path, fallback=None)
    with monkeypatch.context() as patch:  # what a machine without CUDA is told, on any machine
        patch.setattr(torch.cuda, "is_available", lambda: False)
        with pytest.raises(QwenUnavailable, match="CUDA"):
            QwenAnalyzer(tmp_path, fallback=fallback, load_in_4bit=True)


def test_json_object_end_finds_where_the_answer_closes():
    from logllm_plugin.analyzers.qwen import json_object_end

    text = '{"category": "a}b", "summary": "say \\"}\\"", "evidence": [1, {"x": 2}]}\n\nmore {"text"}'
    end = json_object_end(text)
    assert text[:end].endswith('{"x": 2}]}') and json.loads(text[:end])["category"] == "a}b"
    assert json_object_end('{"category": "open", "evidence": [1') is None
    assert json_object_end('{"category": "x"]') is None  # a stray bracket never closes the object


def test_int8_keeps_the_down_projections_and_the_head_float(tiny_dir):
    """All-int8 broke the tuned SmolLM2's answers (the down_proj inputs have outlier channels):
    those layers and the vocabulary head stay float32, every other projection is int8."""
    from logllm_plugin.analyzers.qwen import FLOAT_LINEARS, load_chat_model

    model, _, _ = load_chat_model(tiny_dir, device="cpu", quantize="int8")
    kinds = {}
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.endswith("_proj") or leaf == "lm_head":
            kinds.setdefault(leaf, set()).add(type(module).__module__.startswith("torch.ao.nn.quantized"))
    assert kinds["down_proj"] == {False} and kinds["lm_head"] == {False} and set(FLOAT_LINEARS) == {"down_proj", "lm_head"}
    for leaf in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"):
        assert kinds[leaf] == {True}, leaf
