"""`LogLLMProcessor`: an OpenTelemetry SDK LogRecordProcessor that annotates logs with verdicts.

    provider = LoggerProvider()
    provider.add_log_record_processor(
        LogLLMProcessor(BatchLogRecordProcessor(OTLPLogExporter()), target="localhost:50051"))

It wraps the next processor. Records are queued (bounded) and handed to one worker thread that
groups them into sequences (trace id, else `key_attributes` from the record then the resource),
scores closed sequences through the inference server (or a detector in this process), writes the
`logllm.*` attributes and passes every record on to the wrapped processor exactly once, in order
per key. A record waits at most `latency_budget_s`: sequences close early enough to leave half the
budget for scoring; when the server is down, slow or refuses, records go on unannotated with
`logllm.status` saying why. `on_emit` never raises and never blocks: when the queue is full the
record goes straight on, marked `rejected`. The processor's own logs (and anything logged from its
worker thread) are passed on untouched, never scored, so it cannot feed on itself.
"""
from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

from opentelemetry.sdk._logs import LogRecordProcessor

from collectors.annotations import (CATEGORY, LABEL, SCORE, SEQUENCE_ID, STATUS, STATUS_OK, STATUS_REJECTED,
                                         record_annotations)
from collectors.scoring import Scorer, ScoringFailed, local_scorer, remote_scorer
from logllm_plugin.records import ClosedLines, LogRecord
from logllm_plugin.sequencer import Sequencer, SequencerConfig

logger = logging.getLogger(__name__)

OWN_SCOPES = ("logllm_plugin", "collectors", "trainers")
_FLUSH = object()
# Which annotations to keep when a record has room for only some of them.
_ANNOTATION_PRIORITY = {name: rank for rank, name in enumerate((STATUS, LABEL, SCORE, CATEGORY, SEQUENCE_ID))}


@dataclass
class _Held:
    record: object  # the SDK's ReadWriteLogRecord
    arrived: float  # time.monotonic()


@dataclass
class ProcessorStats:
    records: int = 0
    scored: int = 0
    passed_unscored: int = 0
    queue_full: int = 0
    own_logs: int = 0
    annotations_dropped: int = 0  # left out because the record was at the SDK's attribute limit
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass
class ProcessorConfig:
    """How the processor groups records and how long a record may wait.

    `sequencer` is the same settings object every integration takes (trace id first, then its
    `key_attributes`); its `idle_s` and `max_age_s` are capped at half of `latency_budget_s` so the
    other half is left for scoring.
    """

    sequencer: SequencerConfig = field(default_factory=SequencerConfig)
    latency_budget_s: float = 5.0
    max_queue_records: int = 10_000  # records waiting for the worker; beyond, they pass on `rejected`
    tick_s: float = 0.05  # how often the worker closes idle sequences

    def __post_init__(self) -> None:
        if self.latency_budget_s <= 0 or self.max_queue_records < 1 or self.tick_s <= 0:
            raise ValueError("latency_budget_s and tick_s must be > 0, max_queue_records >= 1")


class LogLLMProcessor(LogRecordProcessor):
    def __init__(
        self,
        downstream: LogRecordProcessor,
        *,
        target: Optional[str | Sequence[str]] = None,
        model_dir: Optional[str] = None,
        scorer: Optional[Scorer] = None,
        token: Optional[str] = None,
        tls_ca=None,
        config: Optional[ProcessorConfig] = None,
    ):
        """Scores through `target` (the inference server(s)), a detector from `model_dir` in this
        process, or any `scorer`; `config` says how records become sequences and how long they may wait."""
        config = config or ProcessorConfig()
        if sum(x is not None for x in (target, scorer)) > 1 or (model_dir and (target or scorer)):
            raise ValueError("give one of target, model_dir or scorer")
        self._downstream = downstream
        self._scorer = scorer or (remote_scorer(target, token=token, tls_ca=tls_ca) if target
                                  else local_scorer(model_dir))
        self.config = config
        self.latency_budget_s = config.latency_budget_s
        # Half the budget for waiting on more lines, half for scoring.
        hold_s = config.latency_budget_s / 2
        self._sequencer = Sequencer(dataclasses.replace(
            config.sequencer, idle_s=min(config.sequencer.idle_s, hold_s),
            max_age_s=min(config.sequencer.max_age_s, hold_s)))
        self._queue: queue.Queue = queue.Queue(config.max_queue_records)
        self._held: dict[int, _Held] = {}
        self._ids = itertools.count(1)
        self._tick_s = config.tick_s
        self.stats = ProcessorStats()
        self._warned_full_record = False
        self._stop = threading.Event()
        self._shut = False
        self._worker = threading.Thread(target=self._run, name="logllm-otel-processor", daemon=True)
        self._worker.start()

    # -- LogRecordProcessor ------------------------------------------------------------------------
    def on_emit(self, log_record) -> None:
        try:
            if self._shut or self._is_own(log_record):
                self.stats.own_logs += 1
                self._downstream.on_emit(log_record)
                return
            self.stats.records += 1
            try:
                self._queue.put_nowait(_Held(log_record, time.monotonic()))
            except queue.Full:
                self.stats.queue_full += 1
                self._annotate(log_record, record_annotations("", "", 0, None, STATUS_REJECTED))
                self._downstream.on_emit(log_record)
        except Exception:  # the application's logging call must never fail because of us
            logger.exception("LogLLMProcessor.on_emit failed; record passed on as is")
            try:
                self._downstream.on_emit(log_record)
            except Exception:
                pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Close every open sequence, score it and pass it on, then flush the wrapped processor."""
        done = threading.Event()
        deadline = time.monotonic() + timeout_millis / 1000.0
        try:
            self._queue.put((_FLUSH, done), timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            return False
        flushed = done.wait(max(0.0, deadline - time.monotonic()))
        remaining_ms = int(max(0.0, deadline - time.monotonic()) * 1000)
        return flushed and self._downstream.force_flush(remaining_ms)

    def shutdown(self) -> None:
        if self._shut:
            return
        self.force_flush()
        self._shut = True
        self._stop.set()
        self._worker.join(self.latency_budget_s + 5)
        close = getattr(self._scorer, "close", None)
        if close:
            close()
        self._downstream.shutdown()

    # -- worker --------------------------------------------------------------------------------------
    def _is_own(self, log_record) -> bool:
        if threading.current_thread() is self._worker:
            return True
        scope = getattr(log_record, "instrumentation_scope", None)
        name = getattr(scope, "name", "") or ""
        return name.split(".", 1)[0] in OWN_SCOPES

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=self._tick_s)
            except queue.Empty:
                first = None
            closed, flush_events = [], []
            batch = [first] if first is not None else []
            while len(batch) < 1000:  # take what is queued so scoring works on batches
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            now = time.monotonic()
            for item in batch:
                if isinstance(item, tuple) and item[0] is _FLUSH:
                    closed.extend(self._sequencer.flush_all())
                    flush_events.append(item[1])
                    continue
                closed.extend(self._sequencer.add(self._to_record(item), now_s=now))
            closed.extend(self._sequencer.flush_expired(now))
            if closed:
                self._score_and_pass(closed)
            for event in flush_events:
                event.set()

    def _to_record(self, held: _Held) -> LogRecord:
        ident = next(self._ids)
        self._held[ident] = held
        rec = held.record.log_record
        attributes = dict(getattr(held.record.resource, "attributes", {}) or {})
        attributes.update(dict(rec.attributes or {}))
        key = None
        trace_id = getattr(rec, "trace_id", None)
        if trace_id:
            key = f"{trace_id:032x}"
        body = rec.body if isinstance(rec.body, str) else ("" if rec.body is None else str(rec.body))
        return LogRecord(message=body, key=key, attributes=attributes, source_line=ident)

    def _score_and_pass(self, sequences) -> None:
        oldest = min(self._held[i].arrived for s in sequences for i in s.source_lines)
        timeout_s = oldest + self.latency_budget_s - time.monotonic()
        try:
            verdicts, status = self._scorer([ClosedLines.of(s) for s in sequences], timeout_s), STATUS_OK
        except ScoringFailed as exc:
            verdicts, status = [None] * len(sequences), exc.status
            logger.warning("sequences passed on unscored (%s)", exc)
        except Exception as exc:
            verdicts, status = [None] * len(sequences), STATUS_REJECTED
            logger.warning("scoring failed: %s; sequences passed on unscored", exc)
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + len(sequences)
        for seq, verdict in zip(sequences, verdicts):
            for position, ident in enumerate(seq.source_lines):
                held = self._held.pop(ident)
                self._annotate(held.record, record_annotations(seq.id, seq.key or "", position, verdict, status,
                                                                    closed_by=seq.closed_by))
                if verdict is None:
                    self.stats.passed_unscored += 1
                else:
                    self.stats.scored += 1
                try:
                    self._downstream.on_emit(held.record)
                except Exception:
                    logger.exception("the wrapped processor failed on a record")

    def _annotate(self, record, attributes: dict) -> None:
        """Write the annotations, but never at the cost of the application's own attributes.

        The SDK bounds a record's attributes (128 by default) and makes room by evicting the
        OLDEST ones, i.e. the application's. On a full record only the annotations that fit are
        written, the most useful first, and the shortfall is counted.
        """
        target = record.log_record.attributes
        maxlen = getattr(target, "maxlen", None)
        names = sorted(attributes, key=lambda n: _ANNOTATION_PRIORITY.get(n, len(_ANNOTATION_PRIORITY)))
        if maxlen is not None:
            room = maxlen - len(target) + sum(1 for n in names if n in target)
            if room < len(names):
                self.stats.annotations_dropped += len(names) - max(room, 0)
                if not self._warned_full_record:
                    logger.warning("a record holds %d attributes (the SDK limit); annotations that do not fit are "
                                   "left out rather than evict the application's attributes", len(target))
                    self._warned_full_record = True
                names = names[: max(room, 0)]
        for name in names:
            target[name] = attributes[name]
