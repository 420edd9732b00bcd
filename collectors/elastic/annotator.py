"""Tail an index pattern, score sequences, write `logllm.*` annotations back (DESIGN §5).

One pass: refresh, open a point in time, page through the pending documents with `search_after`
sorted on the tailing field (`event.ingested` when the documents carry it, else `@timestamp`) and a
unique tiebreaker, feed them to the sequencer (key: the pipeline-stamped `logllm.sequence.key`, else
the key fields), score closed sequences in batches, and write every record of a sequence with one
bulk partial update per batch.

Pending means "has no `logllm.sequence.id` yet" and, for speed, "not older than the checkpoint's
watermark less the lateness window". Documents read but still in an open sequence are remembered
by id so later passes do not add them twice; when the process dies they are simply pending again.
With the writer's `if_seq_no` guard this gives: nothing skipped, nothing annotated twice, across
restarts and kill -9.
"""
from __future__ import annotations

import logging
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from collectors.elastic.bulk import TRANSIENT_STATUSES, BulkWriter, UpdateItem, request_status
from collectors.elastic.checkpoint import Checkpoint, CheckpointStore, utc_now_iso
from collectors.elastic.fields import ANNOTATED_AT, EVENT_INGESTED, TIMESTAMP, get_field
from collectors.annotations import (STATUS_OK, SEQUENCE_ID, SEQUENCE_KEY, SUGGESTION, SUMMARY,
                                         record_annotations)
from collectors.scoring import ScoringFailed
from logllm_plugin.records import ClosedLines, LogRecord, LogSequence
from logllm_plugin.sequencer import DEFAULT_KEY, Sequencer, SequencerConfig

logger = logging.getLogger(__name__)

# Sort values ES/OpenSearch return for a document without the sort field ("missing": "_first").
_MISSING_SORT = (-(2 ** 63), 2 ** 63 - 1)


class AnnotateError(RuntimeError):
    """A pass could not finish (scoring unavailable for too long, the cluster refusing bulks)."""


@dataclass
class AnnotatorConfig:
    index: str
    key_fields: tuple[str, ...] = ("service.name", "host.name")
    message_field: str = "message"
    time_field: Optional[str] = None  # None: event.ingested when documents carry it, else @timestamp
    lateness_s: float = 300.0
    page_size: int = 1000
    score_batch: int = 256  # sequences per scoring call and per bulk request
    score_timeout_s: float = 60.0
    score_attempts: int = 5
    checkpoint_name: Optional[str] = None
    time_range_ms: Optional[tuple[int, int]] = None  # backfill: [from, to)
    partition: Optional[tuple[int, int]] = None  # (i, n): only keys with crc32(key) % n == i (scale-out)
    sequencer: SequencerConfig = field(default_factory=SequencerConfig)

    def __post_init__(self) -> None:
        problems = []
        if not self.index or "," in self.index:
            problems.append(f"index must be one pattern, got {self.index!r}")
        if self.page_size < 1 or self.score_batch < 1 or self.score_attempts < 1:
            problems.append("page_size, score_batch and score_attempts must be >= 1")
        if self.lateness_s < 0:
            problems.append("lateness_s must be >= 0")
        if self.time_range_ms and self.time_range_ms[0] >= self.time_range_ms[1]:
            problems.append("the time range must end after it starts")
        if self.partition is not None and not (self.partition[1] >= 1 and 0 <= self.partition[0] < self.partition[1]):
            problems.append(f"partition must be I/N with 0 <= I < N, got {self.partition!r}")
        if problems:
            raise ValueError("invalid annotator config: " + "; ".join(problems))
        self.key_fields = tuple(self.key_fields)
        if self.checkpoint_name is None:
            part = f"#{self.partition[0]}/{self.partition[1]}" if self.partition else ""
            self.checkpoint_name = self.index + part


@dataclass
class _Doc:
    index: str
    doc_id: str
    seq_no: int
    primary_term: int
    time_ms: Optional[int]
    event_ms: Optional[int] = None  # @timestamp, when tailing on another field: orders lines in a sequence


@dataclass
class AnnotatorStats:
    docs_read: int = 0
    docs_annotated: int = 0
    sequences: int = 0
    anomalous_sequences: int = 0
    conflicts: int = 0
    failures: int = 0
    request_retries: int = 0
    item_retries: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class Annotator:
    def __init__(self, client, score: Callable[[Sequence[Sequence[str]], float], list], config: AnnotatorConfig, *,
                 explainer=None, writer: Optional[BulkWriter] = None, on_progress: Optional[Callable[[int], None]] = None):
        self.client, self.score, self.config = client, score, config
        self.explainer = explainer  # AnalysisService-like: explain(lines_list, verdicts) -> explanations
        self.writer = writer or BulkWriter(client.bulk)
        self.store = CheckpointStore(client, config.checkpoint_name)
        self.stats = AnnotatorStats()
        self.on_progress = on_progress
        self.stop_event = threading.Event()
        self.time_field = config.time_field
        self._reset()

    # ------------------------------------------------------------------------------------ public
    def run_once(self) -> AnnotatorStats:
        """Annotate everything pending now; sequences still open at the end are closed and written."""
        self._prepare()
        self._pass(final=True)
        return self.stats

    def follow(self, poll_s: float = 2.0) -> AnnotatorStats:
        """Annotate as documents arrive until `stop_event` is set; open sequences close when idle.

        On stop, sequences still open are left unannotated: the next start reads them whole.
        """
        self._prepare()
        while not self.stop_event.is_set():
            try:
                self._pass(final=False)
            except Exception as exc:  # a cluster or scorer outage must not end a follower
                status = request_status(exc)
                if not isinstance(exc, AnnotateError) and status != 0 and status not in TRANSIENT_STATUSES:
                    raise
                logger.error("pass abandoned, documents stay pending and are read again: %s", exc)
                self._reset()
                self.stop_event.wait(max(poll_s, 5.0))
            self.stop_event.wait(poll_s)
        return self.stats

    # --------------------------------------------------------------------------------- internals
    def _reset(self) -> None:
        self.sequencer = Sequencer(self.config.sequencer)
        self._docs: dict[int, _Doc] = {}  # handle (LogRecord.source_line) -> document, while pending
        self._pending_ids: set[tuple[str, str]] = set()
        self._skip_ids: set[tuple[str, str]] = set()  # permanent per-item failures, recorded once
        self._ready: list[LogSequence] = []
        self._next_handle = 1
        self._released_min_ms: Optional[int] = None

    def _prepare(self) -> None:
        if self.time_field is None:
            self.time_field = self._detect_time_field()
        self.checkpoint: Checkpoint = self.store.load(self.config.index, self.time_field)
        logger.info("annotating %s on %s from watermark %s (lateness %ss)", self.config.index, self.time_field,
                    self.checkpoint.watermark_ms, self.config.lateness_s)

    def _detect_time_field(self) -> str:
        self.client.refresh(self.config.index)
        found = self.client.search_index(self.config.index, {"size": 0, "track_total_hits": 1, "terminate_after": 1,
                                                             "query": {"exists": {"field": EVENT_INGESTED}}})
        return EVENT_INGESTED if found["hits"]["total"]["value"] > 0 else TIMESTAMP

    def _query(self) -> dict:
        filters: list[dict] = [{"bool": {"must_not": [{"exists": {"field": SEQUENCE_ID}}]}}]
        if self.config.time_range_ms:
            lo, hi = self.config.time_range_ms
            filters.append({"range": {self.time_field: {"gte": lo, "lt": hi, "format": "epoch_millis"}}})
        elif self.checkpoint.watermark_ms is not None:
            since = self.checkpoint.watermark_ms - int(self.config.lateness_s * 1000)
            filters.append({"bool": {"should": [
                {"range": {self.time_field: {"gte": since, "format": "epoch_millis"}}},
                {"bool": {"must_not": [{"exists": {"field": self.time_field}}]}}]}})
        return {"bool": {"filter": filters}}

    def _pass(self, final: bool) -> None:
        index = self.config.index
        self.client.refresh(index)  # our own earlier writes must be visible, or they look pending
        sort = [{self.time_field: {"order": "asc", "missing": "_first", "unmapped_type": "date"}},
                self.client.tiebreaker_sort()]
        fields = sorted({self.config.message_field, SEQUENCE_KEY, self.time_field, *self.config.key_fields})
        max_seen: Optional[int] = None
        self._released_min_ms = None
        pit = self.client.open_pit(index)
        try:
            search_after = None
            while not self.stop_event.is_set():
                body: dict[str, Any] = {"pit": {"id": pit, "keep_alive": "5m"}, "size": self.config.page_size,
                                        "query": self._query(), "sort": sort, "seq_no_primary_term": True,
                                        "_source": fields, "track_total_hits": False}
                if search_after is not None:
                    body["search_after"] = search_after
                if self.time_field != TIMESTAMP:
                    body["docvalue_fields"] = [{"field": TIMESTAMP, "format": "epoch_millis"}]
                result = self.client.search(body)
                pit = result.get("pit_id", pit)
                hits = result["hits"]["hits"]
                if not hits:
                    break
                for hit in hits:
                    doc_ms = self._add(hit)
                    if doc_ms is not None:
                        max_seen = doc_ms if max_seen is None else max(max_seen, doc_ms)
                search_after = hits[-1]["sort"]
                self._write_ready(force=False)
        finally:
            self.client.close_pit(pit)
        if final and not self.stop_event.is_set():
            self._ready.extend(self.sequencer.flush_all())
        elif not final:
            self._ready.extend(self.sequencer.flush_expired(time.time()))
        self._write_ready(force=True)
        self._save_checkpoint(max_seen)

    def _add(self, hit: dict) -> Optional[int]:
        ref = (hit["_index"], hit["_id"])
        if ref in self._pending_ids or ref in self._skip_ids:
            return None
        source = hit.get("_source") or {}
        sort0 = hit["sort"][0]
        time_ms = int(sort0) if isinstance(sort0, (int, float)) and sort0 not in _MISSING_SORT else None
        key = get_field(source, SEQUENCE_KEY)
        if not key:
            values = [get_field(source, f) for f in self.config.key_fields]
            key = "|".join(str(v) for v in values if v is not None) or None
        if self.config.partition is not None:
            mine, count = self.config.partition
            if zlib.crc32((key or DEFAULT_KEY).encode()) % count != mine:
                return None  # another annotator's key: all lines of a key go to one annotator
        message = get_field(source, self.config.message_field)
        handle = self._next_handle
        self._next_handle += 1
        event = (hit.get("fields") or {}).get(TIMESTAMP)
        event_ms = int(float(event[0])) if event else None
        self._docs[handle] = _Doc(hit["_index"], hit["_id"], hit["_seq_no"], hit["_primary_term"], time_ms, event_ms)
        self._pending_ids.add(ref)
        self.stats.docs_read += 1
        record = LogRecord(message="" if message is None else str(message), key=key,
                           timestamp_s=None if time_ms is None else time_ms / 1000.0, source_line=handle)
        self._ready.extend(self.sequencer.add(record, now_s=time.time()))
        return time_ms

    def _write_ready(self, force: bool) -> None:
        batch = self.config.score_batch
        while len(self._ready) >= batch or (force and self._ready):
            chunk, self._ready = self._ready[:batch], self._ready[batch:]
            self._annotate(chunk)

    def _score(self, chunk: list[LogSequence]) -> tuple[Optional[list], str]:
        lines = [ClosedLines.of(s) for s in chunk]  # lists of lines that carry closed_by to a learner
        for attempt in range(self.config.score_attempts):
            try:
                return self.score(lines, self.config.score_timeout_s), STATUS_OK
            except ScoringFailed as exc:
                if exc.status == "rejected":
                    logger.warning("scorer rejected %d sequence(s): written as unscored: %s", len(chunk), exc)
                    return None, exc.status
                if attempt + 1 == self.config.score_attempts:
                    raise AnnotateError(f"scoring failed {attempt + 1} times: {exc}") from exc
                logger.warning("scoring failed (%s); retrying", exc)
                self.stop_event.wait(min(30.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")

    def _in_event_order(self, seq: LogSequence) -> LogSequence:
        """Tailing on ingest time groups documents as they arrived; score their lines as they happened."""
        if self.time_field == TIMESTAMP or not seq.source_lines:
            return seq
        order = sorted(range(len(seq.lines)), key=lambda i: (self._docs[seq.source_lines[i]].event_ms or 0, i))
        seq.lines = [seq.lines[i] for i in order]
        seq.source_lines = [seq.source_lines[i] for i in order]
        return seq

    def _annotate(self, chunk: list[LogSequence]) -> None:
        chunk = [self._in_event_order(seq) for seq in chunk]
        verdicts, status = self._score(chunk)
        explanations = [None] * len(chunk)
        if verdicts is not None and self.explainer is not None and any(v.label == "anomalous" for v in verdicts):
            explanations = self.explainer.explain([s.lines for s in chunk], verdicts)
        stamp = utc_now_iso()
        items: list[tuple[UpdateItem, int]] = []
        for n, seq in enumerate(chunk):
            handles = seq.source_lines or []
            first = self._docs[handles[0]]
            seq_id = f"{seq.key}#{first.doc_id}"
            verdict = verdicts[n] if verdicts is not None else None
            for position, handle in enumerate(handles):
                doc = self._docs[handle]
                fields = record_annotations(seq_id, seq.key or "", position, verdict, status,
                                            closed_by=seq.closed_by)
                explanation = explanations[n]
                if explanation is not None and verdict is not None and verdict.label == "anomalous":
                    fields[SUMMARY], fields[SUGGESTION] = explanation.summary, explanation.suggestion
                fields[ANNOTATED_AT] = stamp
                items.append((UpdateItem(doc.index, doc.doc_id, doc.seq_no, doc.primary_term,
                                         _nested(fields)), handle))
            self.stats.sequences += 1
            self.stats.anomalous_sequences += int(verdict is not None and verdict.label == "anomalous")
        try:
            outcome = self.writer.write([item for item, _ in items])
        except Exception as exc:
            raise AnnotateError(str(exc)) from exc
        self.stats.request_retries += outcome.request_retries
        self.stats.item_retries += outcome.item_retries
        self.stats.docs_annotated += len(outcome.updated)
        self.stats.conflicts += len(outcome.conflicts)
        for item in outcome.conflicts:  # changed since read: pending again, read afresh next pass
            self._release(item)
        for item, code, reason in outcome.failed:
            self.stats.failures += 1
            self._skip_ids.add((item.index, item.doc_id))
            logger.warning("document %s/%s not annotated: %s %s", item.index, item.doc_id, code, reason)
            self.store.record_failure(item.index, item.doc_id, code, reason)
        for _, handle in items:
            doc = self._docs.pop(handle)
            self._pending_ids.discard((doc.index, doc.doc_id))
        if self.on_progress:
            self.on_progress(len(outcome.updated))

    def _release(self, item: UpdateItem) -> None:
        for handle, doc in self._docs.items():
            if doc.index == item.index and doc.doc_id == item.doc_id and doc.time_ms is not None:
                low = self._released_min_ms
                self._released_min_ms = doc.time_ms if low is None else min(low, doc.time_ms)
                break

    def _save_checkpoint(self, max_seen: Optional[int]) -> None:
        if self.config.time_range_ms is None:
            open_times = [d.time_ms for d in self._docs.values() if d.time_ms is not None]
            if self._released_min_ms is not None:
                open_times.append(self._released_min_ms)
            if open_times:
                self.checkpoint.watermark_ms = min(open_times)
            elif max_seen is not None:
                self.checkpoint.watermark_ms = max(max_seen, self.checkpoint.watermark_ms or max_seen)
        self.checkpoint.counters = self.stats.as_dict()
        self.store.save(self.checkpoint)


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    """{"logllm.anomaly.score": 1} → {"logllm": {"anomaly": {"score": 1}}}: the _source Kibana shows."""
    root: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = root
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return root
