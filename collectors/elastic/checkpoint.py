"""The annotator's checkpoint and per-item failure records, kept in the state index.

The checkpoint is a low watermark on the tailing field: every document older than it (less the
lateness window) has been annotated. It bounds what a restart scans; it never decides alone what is
annotated — a document is pending exactly while it lacks `logllm.sequence.id` — so a restart after
kill -9 resumes with nothing skipped and, with the bulk writer's `if_seq_no` guard, nothing written
twice.
"""
from __future__ import annotations

import datetime
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Any, Optional

from collectors.elastic.bulk import with_retries as _retrying
from collectors.elastic.setup import STATE_INDEX, STATE_MAPPINGS

logger = logging.getLogger(__name__)


def utc_now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Checkpoint:
    name: str
    index: str
    time_field: str
    watermark_ms: Optional[int] = None
    counters: dict[str, int] = field(default_factory=dict)


class CheckpointStore:
    def __init__(self, client, name: str, index: str = STATE_INDEX):
        self.client, self.name, self.index = client, name, index
        self._ensured = False

    @property
    def _doc_id(self) -> str:
        return f"checkpoint:{self.name}"

    def _ensure_index(self) -> None:
        if self._ensured:
            return
        raw = self.client.raw
        if not raw.indices.exists(index=self.index):
            try:
                raw.indices.create(index=self.index, body={"settings": {"number_of_replicas": 0},
                                                           "mappings": STATE_MAPPINGS})
            except Exception as exc:  # created meanwhile by a parallel annotator
                if "resource_already_exists" not in str(exc):
                    raise
        # A parallel annotator may have just created it: reads fail (503) until its shard has started.
        self.client.wait_for_index(self.index)
        self._ensured = True

    def load(self, pattern: str, time_field: str) -> Checkpoint:
        self._ensure_index()
        raw = self.client.raw
        try:
            found = _retrying(lambda: raw.get(index=self.index, id=self._doc_id))
        except Exception as exc:
            if "404" not in str(exc) and getattr(exc, "status_code", None) != 404 and "not_found" not in str(exc).lower():
                raise
            return Checkpoint(self.name, pattern, time_field)
        source = found["_source"]
        if source.get("index") != pattern or source.get("time_field") != time_field:
            logger.warning("checkpoint %s was for index %s on %s; starting over for %s on %s", self.name,
                           source.get("index"), source.get("time_field"), pattern, time_field)
            return Checkpoint(self.name, pattern, time_field)
        return Checkpoint(self.name, pattern, time_field, source.get("watermark_ms"), dict(source.get("counters") or {}))

    def save(self, checkpoint: Checkpoint) -> None:
        self._ensure_index()
        body = {"kind": "checkpoint", "name": checkpoint.name, "index": checkpoint.index,
                "time_field": checkpoint.time_field, "watermark_ms": checkpoint.watermark_ms,
                "counters": checkpoint.counters, "updated_at": utc_now_iso()}
        _retrying(lambda: self.client.raw.index(index=self.index, id=self._doc_id, body=body))

    def record_failure(self, index: str, doc_id: str, status: int, error: str) -> None:
        """One record per failed document (a repeated failure overwrites it)."""
        self._ensure_index()
        digest = hashlib.sha1(f"{index}\0{doc_id}".encode()).hexdigest()[:20]
        body = {"kind": "failure", "name": self.name, "index": index, "doc_id": doc_id, "status": status,
                "error": error[:2000], "updated_at": utc_now_iso()}
        _retrying(lambda: self.client.raw.index(index=self.index, id=f"failure:{self.name}:{digest}", body=body))

    def failures(self) -> list[dict[str, Any]]:
        self.client.refresh(self.index)
        result = self.client.search_index(self.index, {"size": 1000, "query": {"bool": {"filter": [
            {"term": {"kind": "failure"}}, {"term": {"name": self.name}}]}}})
        return [hit["_source"] for hit in result["hits"]["hits"]]
