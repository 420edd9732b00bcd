"""`es feedback`: an operator's correction for sequences found in the index.

The operator saw verdicts in Kibana; a query (the ids, a time range, a sequence id) selects the
documents. Every annotated sequence among them is read back whole, in its order
(`logllm.sequence.position`), and handed on as a correction: to a learning server's Feedback call,
or into a learner's directory.
"""
from __future__ import annotations

import json
from typing import Any

from collectors.elastic.fields import get_field
from collectors.annotations import SEQUENCE_ID, SEQUENCE_POSITION

PAGE = 1000


class FeedbackQueryError(ValueError):
    """A query that selects nothing usable, or more sequences than the caller allows."""


def parse_query(text: str) -> dict[str, Any]:
    """A Lucene query string, or a JSON query DSL object when the text starts with `{`."""
    text = (text or "").strip()
    if not text:
        raise FeedbackQueryError("--query is empty")
    if text.startswith("{"):
        try:
            query = json.loads(text)
        except ValueError as exc:
            raise FeedbackQueryError(f"--query looks like JSON but does not parse: {exc}") from None
        if not isinstance(query, dict):
            raise FeedbackQueryError("--query JSON must be an object (a query DSL clause)")
        return query
    return {"query_string": {"query": text}}


def id_field(client, index: str) -> str:
    """`logllm.sequence.id` as an exact-value field: keyword where `es setup` mapped it, else the
    `.keyword` sub-field that dynamic mapping adds to strings (an index nobody set up)."""
    types = client.field_types(index, [SEQUENCE_ID, f"{SEQUENCE_ID}.keyword"])
    if types.get(SEQUENCE_ID) == "keyword":
        return SEQUENCE_ID
    if types.get(f"{SEQUENCE_ID}.keyword") == "keyword":
        return f"{SEQUENCE_ID}.keyword"
    if SEQUENCE_ID not in types:
        raise FeedbackQueryError(f"{index}: no document has {SEQUENCE_ID}: nothing was annotated by `es annotate` yet")
    raise FeedbackQueryError(f"{index}: {SEQUENCE_ID} is mapped as {types[SEQUENCE_ID]}, not keyword "
                             "(run `logllm-plugin es setup` for new indices)")


def _search(client, index: str, body: dict[str, Any]) -> dict[str, Any]:
    try:
        return client.search_index(index, body)
    except Exception as exc:  # the client libraries' errors: say what the cluster said, no traceback
        info = getattr(exc, "info", None) or getattr(exc, "message", None) or exc
        raise FeedbackQueryError(f"{index}: the cluster refused the search: {str(info)[:500]}") from None


def sequence_ids(client, index: str, query: dict[str, Any], max_sequences: int, field: str = SEQUENCE_ID) -> list[str]:
    """The annotated sequences the query's documents belong to (at most max_sequences, else an error)."""
    body = {"size": 0, "query": {"bool": {"filter": [query, {"exists": {"field": field}}]}},
            "aggs": {"ids": {"terms": {"field": field, "size": max_sequences + 1}}}}
    buckets = _search(client, index, body)["aggregations"]["ids"]["buckets"]
    if not buckets:
        raise FeedbackQueryError(f"{index}: no annotated document matches the query (only documents with "
                                 f"{SEQUENCE_ID}, i.e. scored by `es annotate`, can be corrected)")
    if len(buckets) > max_sequences:
        raise FeedbackQueryError(f"{index}: the query matches more than {max_sequences} sequences; narrow it "
                                 "or raise --max-sequences")
    return sorted(str(b["key"]) for b in buckets)


def lines_of_sequences(client, index: str, ids: list[str], message_field: str,
                       field: str = SEQUENCE_ID) -> list[list[str]]:
    """Each sequence's lines in position order, read whole (not only the documents the query hit)."""
    client.refresh(index)
    lines: dict[str, list[tuple[int, str]]] = {i: [] for i in ids}
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        after = None
        while True:
            body: dict[str, Any] = {"size": PAGE, "query": {"terms": {field: chunk}},
                                    "_source": [message_field, SEQUENCE_ID, SEQUENCE_POSITION],
                                    "sort": [{field: "asc"}, {SEQUENCE_POSITION: "asc"}]}
            if after is not None:
                body["search_after"] = after
            hits = _search(client, index, body)["hits"]["hits"]
            if not hits:
                break
            for hit in hits:
                source = hit.get("_source") or {}
                message = get_field(source, message_field)
                seq = get_field(source, SEQUENCE_ID)
                if message is not None and seq in lines:
                    lines[seq].append((int(get_field(source, SEQUENCE_POSITION) or 0), str(message)))
            after = hits[-1]["sort"]
    missing = [i for i in ids if not lines[i]]
    if missing:
        raise FeedbackQueryError(f"{index}: no {message_field!r} in the documents of {len(missing)} sequence(s), "
                                 f"e.g. {missing[0]} (set --message-field)")
    return [[text for _, text in sorted(lines[i])] for i in ids]
