"""`data llm-pairs`: the chat pairs `train llm` trains on, with the data's explanations."""
from __future__ import annotations

import json
import re

import pytest

from logllm_plugin.analyzers.prompt import parse_answer
from logllm_plugin.data.generate import GenerateOptions, generate
from logllm_plugin.data.io import write_jsonl
from logllm_plugin.personal_data import PersonalDataMasker
from trainers.llm_pairs import chat_rows
from logllm_plugin.readers import read_sequence_file
from trainers.llm_data import LLMTrainingError, build_pairs


@pytest.fixture(scope="module")
def sequences(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs") / "gen.jsonl"
    write_jsonl(path, generate(GenerateOptions(n=120, seed=9)))
    return list(read_sequence_file(path))


def test_one_chat_row_per_anomaly_in_train_llm_format(sequences):
    rows = chat_rows(sequences)
    anomalies = [s for s in sequences if s.label == 1]
    assert [r["id"] for r in rows] == [s.id for s in anomalies]
    pairs = build_pairs(sequences)
    for row, pair in zip(rows, pairs):
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert row["messages"][:2] == pair.messages  # the very prompt train llm and the analyzer use


# The generated categories; the knowledge base has a class for each (concurrency_conflict since it
# classifies by meaning too).
KB_CATEGORIES = {"cascading_failure", "auth_error", "resource_exhaustion", "timeout", "data_format_error",
                 "configuration_error", "database_error", "concurrency_conflict"}


def shipped_advice() -> dict[str, str]:
    """Each class's suggestion as the shipped YAML spells it, read here with plain yaml (whitespace
    folded as in the answer), not through the loader the code under test uses."""
    import yaml

    from tests.conftest import REPO

    classes = yaml.safe_load((REPO / "configs" / "knowledge_base.yaml").read_text(encoding="utf-8"))["classes"]
    return {c["name"]: " ".join(c["suggestion"].split()) for c in classes}


def test_answers_parse_and_carry_category_explanation_evidence_and_kb_advice(sequences):
    advice = shipped_advice()
    assert KB_CATEGORIES <= set(advice)
    by_id = {s.id: s for s in sequences}
    seen = set()
    for row in chat_rows(sequences):
        seq = by_id[row["id"]]
        answer = json.loads(row["messages"][-1]["content"])
        parse_answer(row["messages"][-1]["content"], len(seq.lines))  # the analyzer would accept it
        assert answer["category"] == seq.category == row["category"]
        for message in row["messages"]:  # the raw addresses and user ids of the data never reach a pair
            assert not re.search(r"\b\d{1,3}(\.\d{1,3}){3}\b|user=u\d", message["content"]), message["content"]
        # The summary is the data's explanation, masked with the lines (the same placeholders).
        masked = PersonalDataMasker().mask_sequence([*seq.lines, seq.explanation])
        assert answer["summary"] == masked[-1]
        assert all(m in row["messages"][1]["content"] for m in re.findall(r"<[A-Z]+_\d+>", masked[-1]))
        assert answer["evidence"] == [i for i, x in enumerate(seq.line_labels) if x]
        seen.add(seq.category)
        # One sentence of the advice: up to the first full stop, colon or semicolon.
        first = re.split(r"(?<=\.)\s|[:;]\s", advice[seq.category], maxsplit=1)[0].rstrip(".") + "."
        assert answer["suggestion"] == first and advice[seq.category].startswith(first[:-1])
    assert seen == KB_CATEGORIES  # 120 sequences hold every category


def test_data_without_anomalies_gives_no_pairs_and_says_why(sequences):
    with pytest.raises(LLMTrainingError, match="no labeled anomalous sequences"):
        chat_rows([s for s in sequences if s.label == 0])
