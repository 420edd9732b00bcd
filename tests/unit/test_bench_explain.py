"""`bench explain`: every analyzer on the same labeled anomalies, scored the same way."""
from __future__ import annotations

import json

import pytest

from logllm_plugin.analyzers.base import EvidenceLine, Explanation
from logllm_plugin.benchmarks.explain import Labeled, personal_data_in, score_explanations

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny_dir and one_thread: tests/unit/conftest.py


def _explanation(category="timeout", evidence=(2,), summary="The call timed out.", suggestion="Check the callee.",
                 status="ok", line="ERROR call to <IP_1> timed out"):
    return Explanation(category=category, summary=summary, suggestion=suggestion,
                       evidence=[EvidenceLine(i, line) for i in evidence], analyzer="x", status=status)


def test_scores_count_categories_cited_lines_completeness_and_leaks():
    labeled = [Labeled("timeout", [2]), Labeled("auth_error", [1, 3]), Labeled("timeout", [0]),
               Labeled("database_error", [4])]
    explanations = [
        _explanation(),  # right, cites the incident line
        _explanation("auth_error", evidence=(1, 5), status="invalid_output"),  # right, from a fallback; one of two cited right
        _explanation("timeout", evidence=(), summary="Timed out for alice@example.com."),  # no evidence, a leak
        _explanation("network", evidence=(4,), suggestion=" "),  # wrong category, no suggestion
    ]
    figures = score_explanations(explanations, labeled, [1.0, 2.0, 3.0, 10.0])
    assert figures["category_accuracy"] == 0.75
    assert figures["own_answer_category_accuracy"] == 0.5  # the fallback's right answer is not the model's
    assert figures["fallback_rate"] == 0.25 and figures["statuses"] == {"ok": 3, "invalid_output": 1}
    assert figures["evidence_precision"] == round(3 / 4, 3)  # cited 2, 1, 5, 4: right 2, 1, 4
    assert figures["evidence_recall"] == round(3 / 5, 3)  # labeled 2, 1, 3, 0, 4: found 2, 1, 4
    assert figures["completeness"] == 0.5
    assert figures["personal_data_absent"] == 0.75
    assert figures["seconds_per_explanation_p50"] == 2.5 and figures["seconds_per_explanation_mean"] == 4.0
    with pytest.raises(ValueError):
        score_explanations(explanations[:2], labeled, [1.0, 1.0])


def test_placeholders_are_not_personal_data_but_raw_values_are():
    assert not personal_data_in(_explanation(summary="Token of user=<USER_1> from <IP_2> expired."))
    assert personal_data_in(_explanation(summary="Token of user from 10.1.2.3 expired."))
    assert personal_data_in(_explanation(line="ERROR login failed for bob@example.org"))


def test_bench_explain_scores_the_knowledge_base_and_a_model_on_the_same_items(tiny_dir, tmp_path):
    """The tiny random model answers nothing valid: all its explanations are the fallback's, and the
    table says so; the knowledge base answers every generated category."""
    from click.testing import CliRunner

    from logllm_plugin.cli import main
    from logllm_plugin.data.generate import GenerateOptions, generate

    path = tmp_path / "gen.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in generate(
        GenerateOptions(n=40, anomaly_rate=0.5, silent_rate=0.0, seed=5))))
    result = CliRunner().invoke(main, ["bench", "explain", "--input", str(path), "--llm", str(tiny_dir), "--n", "3",
                                       "--lines", "10", "--threads", "1", "--timeout-s", "20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["items"] == 3 and set(report["analyzers"]) == {"knowledge_base", "base_llm"}
    kb, llm = report["analyzers"]["knowledge_base"], report["analyzers"]["base_llm"]
    assert kb["explanations"] == llm["explanations"] == 3
    assert kb["fallback_rate"] == 0.0 and kb["completeness"] == 1.0 and kb["personal_data_absent"] == 1.0
    assert llm["fallback_rate"] == 1.0 and llm["own_answer_category_accuracy"] == 0.0
    assert sum(llm["statuses"].values()) == 3 and "ok" not in llm["statuses"]
    assert llm["category_accuracy"] == kb["category_accuracy"]  # what the user got: the knowledge base's answers
    table = CliRunner().invoke(main, ["bench", "explain", "--input", str(path), "--n", "2"])
    assert table.exit_code == 0 and "| knowledge_base | " in table.output
    refused = CliRunner().invoke(main, ["bench", "explain", "--input", str(path), "--adapter", str(tmp_path)])
    assert refused.exit_code != 0 and "--adapter needs --llm" in refused.output
