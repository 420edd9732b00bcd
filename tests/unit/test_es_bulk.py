"""The bulk writer's retry and outcome rules, and connection settings (no cluster needed)."""
from __future__ import annotations

import pytest

from collectors.elastic.bulk import BulkFailed, BulkWriter, UpdateItem
from collectors.elastic.connection import ClusterError, ConnectionSettings


class ApiLikeError(Exception):
    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.status_code = status


def items(n):
    return [UpdateItem("idx", f"d{i}", seq_no=i, primary_term=1, doc={"logllm": {"status": "ok"}}) for i in range(n)]


def answer(*statuses):
    return {"errors": any(s >= 300 for s in statuses),
            "items": [{"update": {"status": s, **({"error": {"type": "x", "reason": "why"}} if s >= 300 else {})}}
                      for s in statuses]}


def scripted(*responses):
    calls = []

    def bulk(operations):
        calls.append(operations)
        response = responses[len(calls) - 1]
        if isinstance(response, Exception):
            raise response
        return response

    return bulk, calls


def test_items_rejected_with_429_are_retried_alone_and_conflicts_and_errors_are_reported():
    bulk, calls = scripted(answer(200, 429, 409, 400), answer(200))
    outcome = BulkWriter(bulk, backoff_base_s=0, sleep=lambda s: None).write(items(4))
    assert [i.doc_id for i in outcome.updated] == ["d0", "d1"]
    assert [i.doc_id for i in outcome.conflicts] == ["d2"]
    assert [(i.doc_id, status) for i, status, _ in outcome.failed] == [("d3", 400)]
    assert outcome.item_retries == 1 and len(calls) == 2
    assert calls[1][0] == {"update": {"_index": "idx", "_id": "d1", "if_seq_no": 1, "if_primary_term": 1}}


def test_a_refused_request_is_retried_with_growing_pauses_then_given_up():
    pauses = []
    bulk, calls = scripted(*[ApiLikeError(503)] * 4)
    writer = BulkWriter(bulk, max_attempts=4, backoff_base_s=0.1, sleep=pauses.append)
    with pytest.raises(BulkFailed):
        writer.write(items(2))
    assert len(calls) == 4 and len(pauses) == 3
    assert pauses[0] < 0.1 + 1e-9 and pauses[2] > pauses[0]


def test_a_client_error_on_the_request_is_not_retried():
    bulk, calls = scripted(ApiLikeError(400))
    with pytest.raises(ApiLikeError):
        BulkWriter(bulk, sleep=lambda s: None).write(items(1))
    assert len(calls) == 1


def test_connection_settings_reject_bad_input_at_once_and_never_show_secrets():
    with pytest.raises(ClusterError) as err:
        ConnectionSettings(url="localhost:9200", backend="solr", api_key="k", username="u", password="p")
    message = str(err.value)
    assert "http://" in message and "backend" in message and "not both" in message
    settings = ConnectionSettings.from_env("http://h:9200", env={"LOGLLM_ES_USERNAME": "elastic",
                                                                   "LOGLLM_ES_PASSWORD": "s3cret-pw"})
    assert settings.auth_kind == "basic" and "s3cret-pw" not in repr(settings)
    assert settings.auth_headers()["Authorization"].startswith("Basic ")
    with pytest.raises(ClusterError, match="both a username and a password"):
        ConnectionSettings.from_env("http://h:9200", env={"LOGLLM_ES_USERNAME": "elastic"})


def test_with_retries_retries_refusals_and_connection_errors_but_not_client_errors():
    from collectors.elastic.bulk import with_retries

    pauses, outcomes = [], [ApiLikeError(429), ConnectionError("reset"), "done"]

    def call():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    assert with_retries(call, sleep=pauses.append) == "done" and len(pauses) == 2
    with pytest.raises(ApiLikeError):
        with_retries(lambda: (_ for _ in ()).throw(ApiLikeError(404)), sleep=pauses.append)
    assert len(pauses) == 2
