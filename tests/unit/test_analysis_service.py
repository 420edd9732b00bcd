"""Masking before analysis, the per-signature cache, the rate limit and the fallback."""
from __future__ import annotations

from logllm_plugin.analyzers.base import Explanation
from logllm_plugin.analyzers.service import AnalysisService, TokenBucket
from logllm_plugin.records import Verdict


def anomalous(evidence=(0,)):
    return Verdict(id="s", label="anomalous", score=0.9, category="anomaly", evidence=list(evidence), novel_templates=0)


class RecordingAnalyzer:
    name = "recording"

    def __init__(self, fail=False):
        self.seen = []
        self.fail = fail

    def explain_batch(self, items):
        if self.fail:
            raise RuntimeError("model crashed")
        self.seen.extend(items)
        return [Explanation("anomaly", f"summary of {item.lines[0]}", "do x", [], self.name) for item in items]


def signature(lines):
    return tuple(len(line.split()) for line in lines)  # stands in for template ids


def test_the_analyzer_only_ever_sees_masked_text():
    primary = RecordingAnalyzer()
    service = AnalysisService(primary=primary, signature=signature)
    service.explain([["login failed for alice@example.com from 10.0.0.12 token=abc123secret"]], [anomalous()])
    seen = primary.seen[0].lines[0]
    assert seen == "login failed for <EMAIL_1> from <IP_1> token=<SECRET_1>"


def test_a_recurring_incident_is_explained_once_and_quotes_its_own_lines():
    primary = RecordingAnalyzer()
    service = AnalysisService(primary=primary, signature=signature)
    first = service.explain([["disk full on node-1", "retry"]], [anomalous()])[0]
    second = service.explain([["disk full on node-2", "retry"]], [anomalous()])[0]
    assert len(primary.seen) == 1
    assert not first.cached and second.cached and second.summary == first.summary
    other = service.explain([["a different shape of line here", "retry"]], [anomalous()])[0]
    assert not other.cached and len(primary.seen) == 2


def test_beyond_the_rate_limit_the_knowledge_base_answers_with_status_rate_limited():
    primary = RecordingAnalyzer()
    service = AnalysisService(primary=primary, signature=signature, rate_per_s=0.001, burst=2, cache_size=0)
    lines = [[f"timeout calling service {'x ' * k}"] for k in range(4)]
    out = service.explain(lines, [anomalous()] * 4)
    assert [e.status for e in out] == ["ok", "ok", "rate_limited", "rate_limited"]
    assert out[2].analyzer == "knowledge_base" and out[2].category == "timeout"


def test_a_crashing_analyzer_falls_back_with_status_unavailable():
    service = AnalysisService(primary=RecordingAnalyzer(fail=True), signature=signature)
    out = service.explain([["connection refused by the payment service"]], [anomalous()])[0]
    assert out.status == "unavailable" and out.analyzer == "knowledge_base" and out.category == "connection_failure"


def test_normal_verdicts_are_not_explained():
    primary = RecordingAnalyzer()
    service = AnalysisService(primary=primary)
    normal = Verdict(id="n", label="normal", score=0.1, category="normal", evidence=[], novel_templates=0)
    assert service.explain([["fine"]], [normal])[0].status == "not_anomalous" and not primary.seen


def test_token_bucket_refills_with_time():
    now = [0.0]
    bucket = TokenBucket(rate_per_s=2.0, burst=1, clock=lambda: now[0])
    assert bucket.take() and not bucket.take()
    now[0] = 0.5
    assert bucket.take()
