"""`data generate`: deterministic, labeled, and anomalies that hide in order and counts."""
from __future__ import annotations

from collections import Counter

import pytest

from logllm_plugin.analyzers.knowledge_base import KnowledgeBaseAnalyzer, load_knowledge_base
from logllm_plugin.data.generate import CATEGORIES, GenerateOptions, generate
from logllm_plugin.templates import TemplateStore

LEVEL = 1  # "<timestamp> <LEVEL> <service> ..."


@pytest.fixture(scope="module")
def rows():
    return generate(GenerateOptions(n=2000, seed=7))


def _level(line: str) -> str:
    return line.split()[LEVEL]


def test_the_same_seed_gives_the_same_data_and_another_seed_other_data():
    assert generate(GenerateOptions(n=200, seed=3)) == generate(GenerateOptions(n=200, seed=3))
    assert generate(GenerateOptions(n=200, seed=3)) != generate(GenerateOptions(n=200, seed=4))


def test_sequences_hold_6_to_15_lines_with_parallel_line_labels(rows):
    assert all(6 <= len(r["lines"]) <= 15 for r in rows)
    assert {len(r["lines"]) for r in rows} >= {6, 8, 12, 15}
    for r in rows:
        assert ("line_labels" in r) == (r["label"] == 1)
        if r["label"]:
            assert len(r["line_labels"]) == len(r["lines"]) and sum(r["line_labels"]) >= 1


def test_anomaly_rate_categories_and_kinds_follow_the_options(rows):
    anomalies = [r for r in rows if r["label"] == 1]
    assert abs(len(anomalies) / len(rows) - 0.3) < 0.04
    assert {r["category"] for r in anomalies} == set(CATEGORIES)
    kinds = Counter(r["anomaly_kind"] for r in anomalies)
    assert abs(kinds["explicit"] / len(anomalies) - 0.5) < 0.06  # silent_rate 0.5
    assert kinds["order"] > 100 and kinds["count"] > 100
    assert all("category" not in r and "anomaly_kind" not in r for r in rows if r["label"] == 0)
    only = generate(GenerateOptions(n=300, seed=1, categories=("timeout", "auth_error")))
    assert {r["category"] for r in only if r["label"]} == {"timeout", "auth_error"}


def test_only_explicit_anomalies_carry_error_lines(rows):
    for r in rows:
        has_error = any(_level(line) == "ERROR" for line in r["lines"])
        assert has_error == (r.get("anomaly_kind") == "explicit"), r["id"]


def test_normal_sequences_carry_benign_warn_noise(rows):
    normal = [r for r in rows if r["label"] == 0]
    with_warn = sum(any(_level(line) == "WARN" for line in r["lines"]) for r in normal)
    assert 0.15 < with_warn / len(normal) < 0.5  # noise_rate 0.4, not every noise line is a WARN
    quiet = generate(GenerateOptions(n=300, seed=1, noise_rate=0.0))
    assert not any(_level(line) == "WARN" for r in quiet if r["label"] == 0 for line in r["lines"])


def test_order_anomalies_have_the_bag_of_templates_of_a_normal_sequence(rows):
    store = TemplateStore()

    def bag(r):
        return frozenset(Counter(store.mask(line.split(" ", 1)[1]) for line in r["lines"]).items())

    quiet = generate(GenerateOptions(n=3000, seed=2, noise_rate=0.0))
    normal_bags = {bag(r) for r in quiet if r["label"] == 0}
    order = [r for r in quiet if r.get("anomaly_kind") == "order"]
    assert order and all(bag(r) in normal_bags for r in order)
    count = [r for r in quiet if r.get("anomaly_kind") == "count"]
    assert count and not any(bag(r) in normal_bags for r in count)


def test_categories_are_the_knowledge_base_classes_and_it_recognises_explicit_ones():
    kb_names = {c.name for c in load_knowledge_base()[0]}
    assert set(CATEGORIES) <= kb_names  # every generated category is a knowledge-base class
    analyzer = KnowledgeBaseAnalyzer()
    explicit = [r for r in generate(GenerateOptions(n=600, seed=5, silent_rate=0.0))
                if r["label"] and r["category"] in kb_names]
    for r in explicit:
        evidence = [i for i, x in enumerate(r["line_labels"]) if x]
        assert analyzer.classify(r["lines"], evidence)[0].name == r["category"], r["lines"]


def test_explanations_name_the_request_they_describe(rows):
    anomalies = [r for r in rows if r["label"] == 1]
    assert all(r["explanation"] and "{" not in r["explanation"] for r in anomalies)
    db = next(r for r in anomalies if r["category"] == "database_error" and r["anomaly_kind"] == "explicit")
    host = db["explanation"].split("database at ")[1].split()[0]
    assert any(host in line for line in db["lines"])


@pytest.mark.parametrize("opts, message", [
    (GenerateOptions(n=0), "--n must be at least 1"),
    (GenerateOptions(anomaly_rate=1.5), "--anomaly-rate must be between 0 and 1"),
    (GenerateOptions(categories=("timeout", "gremlins")), "unknown categories gremlins"),
])
def test_impossible_options_are_refused_with_every_problem_named(opts, message):
    with pytest.raises(ValueError, match=message):
        generate(opts)
