"""The OTLP bridge: the collector exports logs here; we annotate them and forward them on.

    collector pipeline A ──otlp_grpc──► bridge (LogsService/Export) ──otlp──► collector pipeline B

An Export is answered once its request is fsynced in the spool, not when its records are scored:
sequences then span requests instead of being cut at request boundaries, and the collector's
retry still guarantees at-least-once delivery (a crash replays the spool from the last
acknowledged entry). One worker takes entries in order, groups records into sequences (trace id,
else `key_attributes` from the record then the resource), scores closed sequences, writes the
`logllm.*` attributes and forwards them, retrying the downstream until it accepts. An entry is
acknowledged (and later deleted) when all its records reached the downstream. When the downstream
is down the spool fills and Export answers UNAVAILABLE, which the collector retries: backpressure.
A spool that cannot be written (disk full, read-only) also answers UNAVAILABLE, never UNKNOWN: the
collector drops a batch answered with a non-retryable code.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_service
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2

from collectors.annotations import STATUS_OK, STATUS_REJECTED, record_annotations
from collectors.otel.bridge_metrics import BridgeMetrics
from collectors.scoring import Scorer, ScoringFailed
from collectors.otel.spool import Spool, SpoolFull, SpoolWriteError
from logllm_plugin.records import ClosedLines, LogRecord
from logllm_plugin.sequencer import Sequencer, SequencerConfig

logger = logging.getLogger(__name__)

EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
MAX_SEQUENCES_PER_SCORING = 512
RETRYABLE = ("busy", "store_failed")  # Export outcomes the sender must retry


@dataclass
class _Item:
    entry: int  # spool sequence number of the request it came in
    resource: logs_pb2.ResourceLogs  # a template: resource + schema url, without its scope_logs
    scope: logs_pb2.ScopeLogs  # likewise, without log_records
    record: logs_pb2.LogRecord


def any_value_text(value: common_pb2.AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return value.string_value
    if kind == "bytes_value":
        return value.bytes_value.decode("utf-8", "replace")
    return str(getattr(value, kind))


def to_any_value(value) -> common_pb2.AnyValue:
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    return common_pb2.AnyValue(string_value=str(value))


def set_attributes(record: logs_pb2.LogRecord, values: dict) -> None:
    existing = {kv.key: kv for kv in record.attributes}
    for key, value in values.items():
        if key in existing:
            existing[key].value.CopyFrom(to_any_value(value))
        else:
            record.attributes.append(common_pb2.KeyValue(key=key, value=to_any_value(value)))


class _Forwarder:
    """Sends annotated records downstream, retrying (with backoff) until they are accepted."""

    def __init__(self, target: str, stop: threading.Event, on_failure=lambda: None, timeout_s: float = 10.0):
        self._on_failure = on_failure
        self._channel = grpc.insecure_channel(target)
        self._export = self._channel.unary_unary(
            EXPORT, request_serializer=logs_service.ExportLogsServiceRequest.SerializeToString,
            response_deserializer=logs_service.ExportLogsServiceResponse.FromString)
        self._stop = stop
        self._timeout_s = timeout_s
        self.rejected = 0

    def send(self, items: Sequence[_Item]) -> bool:
        """True once delivered; False only when stopping before the downstream took them."""
        request = self._request(items)
        backoff = 0.1
        while True:
            try:
                response = self._export(request, timeout=self._timeout_s)
                if response.HasField("partial_success") and response.partial_success.rejected_log_records:
                    self.rejected += response.partial_success.rejected_log_records
                    logger.warning("downstream rejected %d records: %s", response.partial_success.rejected_log_records,
                                   response.partial_success.error_message)
                return True
            except grpc.RpcError as exc:
                self._on_failure()
                logger.warning("downstream export failed (%s); retrying in %.1f s", exc.code().name, backoff)
            if self._stop.wait(backoff):
                return False
            backoff = min(backoff * 2, 5.0)

    @staticmethod
    def _request(items: Sequence[_Item]) -> logs_service.ExportLogsServiceRequest:
        """Regroup records under their resource and scope, keeping their order."""
        request = logs_service.ExportLogsServiceRequest()
        last_resource = last_scope = None
        for item in items:
            if last_resource is None or item.resource is not last_resource[0]:
                rl = request.resource_logs.add()
                rl.CopyFrom(item.resource)
                last_resource, last_scope = (item.resource, rl), None
            if last_scope is None or item.scope is not last_scope[0]:
                sl = last_resource[1].scope_logs.add()
                sl.CopyFrom(item.scope)
                last_scope = (item.scope, sl)
            last_scope[1].log_records.append(item.record)
        return request

    def close(self) -> None:
        self._channel.close()


class OtlpBridge:
    def __init__(
        self,
        *,
        listen: str,
        forward: str,
        scorer: Scorer,
        spool_dir: str | Path,
        sequencer: Optional[SequencerConfig] = None,
        score_timeout_s: float = 5.0,
        spool_max_bytes: int = 256 << 20,
        max_request_bytes: int = 16 << 20,
        tick_s: float = 0.05,
        http_listen: Optional[str] = None,
    ):
        self.listen = listen
        self.http_listen = http_listen  # HOST:PORT for OTLP/HTTP as well (port 0: a free one)
        self.http_port: Optional[int] = None
        self._http = None
        self._scorer = scorer
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes)
        self._sequencer = Sequencer(sequencer or SequencerConfig())  # trace id, else its key_attributes
        self._score_timeout_s = score_timeout_s
        self._max_request_bytes = max_request_bytes
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._flush = threading.Event()  # stop(flush=True): close open sequences once the spool is drained
        self.metrics = BridgeMetrics(lambda: self.spool.pending_bytes, spool_max_bytes,
                                     lambda: self._sequencer.open_sequences)
        self._forwarder = _Forwarder(forward, self._stop, on_failure=self.metrics.downstream_failures.inc)
        self._items: dict[int, _Item] = {}
        self._ids = itertools.count(1)
        self._outstanding: dict[int, int] = {}  # spool entry → records not yet forwarded
        self._sizes: dict[int, int] = {}
        self._server: Optional[grpc.Server] = None
        self.port: Optional[int] = None
        self._worker = threading.Thread(target=self._run, name="logllm-otlp-bridge", daemon=True)
        self.forwarded = 0

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> "OtlpBridge":
        self._server = grpc.server(ThreadPoolExecutor(max_workers=8, thread_name_prefix="logllm-otlp"),
                                   options=[("grpc.max_receive_message_length", 2 * self._max_request_bytes)])
        handler = grpc.unary_unary_rpc_method_handler(
            self._export, request_deserializer=lambda data: data,  # kept as bytes: spooled as received
            response_serializer=logs_service.ExportLogsServiceResponse.SerializeToString)
        self._server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.logs.v1.LogsService", {"Export": handler})])
        self.port = self._server.add_insecure_port(self.listen)
        if not self.port:
            raise OSError(f"cannot listen on {self.listen}")
        self._server.start()
        if self.http_listen:
            from collectors.otel.bridge_http import OtlpHttpListener

            host, _, port = self.http_listen.rpartition(":")
            self._http = OtlpHttpListener(self, host or "127.0.0.1", int(port)).start()
            self.http_port = self._http.port
        self._worker.start()
        logger.info("bridge listening", extra={"port": self.port, "http_port": self.http_port})
        return self

    def stop(self, grace_s: float = 5.0, flush: bool = True) -> None:
        """Stop taking requests; with `flush`, close and forward open sequences first."""
        if self._http is not None:
            self._http.stop()
        if self._server is not None:
            self._server.stop(grace_s).wait()
        if flush:
            self._flush.set()
            deadline = time.monotonic() + grace_s + self._score_timeout_s
            while self.spool.pending_bytes > 0 and time.monotonic() < deadline:
                time.sleep(self._tick_s)
        self._stop.set()
        self._worker.join(10)
        self._forwarder.close()
        self.spool.close()
        self.metrics.close()

    # -- Export --------------------------------------------------------------------------------------
    def accept(self, data: bytes) -> tuple[str, str]:
        """Spool one serialized ExportLogsServiceRequest, for any transport.

        Returns (outcome, reason): `accepted` (fsynced: answer success); `too_large` or `malformed`
        (answer a permanent error); `busy` (spool full) or `store_failed` (disk full, read-only):
        answer a retryable error, so the sender keeps the records and tries again.
        """
        if len(data) > self._max_request_bytes:
            outcome, reason = "too_large", f"request is {len(data)} bytes; the limit is {self._max_request_bytes}"
        else:
            try:
                logs_service.ExportLogsServiceRequest.FromString(data)
            except Exception as exc:  # malformed: answered, never spooled, never a crash
                outcome, reason = "malformed", f"not a valid ExportLogsServiceRequest: {exc}"
            else:
                try:
                    self.spool.append(data)
                    outcome, reason = "accepted", ""
                except SpoolFull as exc:
                    outcome, reason = "busy", f"bridge busy: {exc}"
                except SpoolWriteError as exc:
                    outcome, reason = "store_failed", f"bridge cannot store the request: {exc}"
        self.metrics.requests.labels(outcome).inc()
        return outcome, reason

    def _export(self, data: bytes, context) -> logs_service.ExportLogsServiceResponse:
        outcome, reason = self.accept(data)
        if outcome in RETRYABLE:
            context.abort(grpc.StatusCode.UNAVAILABLE, reason)  # never UNKNOWN: the collector drops those
        if outcome != "accepted":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, reason)
        return logs_service.ExportLogsServiceResponse()

    # -- worker --------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            entry = self.spool.take(self._tick_s)
            now = time.monotonic()
            closed = []
            drained = entry is None
            while entry is not None:  # take what is waiting, so the model scores large batches
                closed.extend(self._ingest(*entry, now))
                if len(closed) >= MAX_SEQUENCES_PER_SCORING:
                    break
                entry = self.spool.take(0)
                drained = entry is None
            closed.extend(self._sequencer.flush_expired(now))
            self.spool.retry_commit()
            if self._flush.is_set() and drained:
                closed.extend(self._sequencer.flush_all())
            if closed and not self._deliver(closed):
                return

    def _ingest(self, seq: int, payload: bytes, now: float) -> list:
        request = logs_service.ExportLogsServiceRequest.FromString(payload)
        self._sizes[seq] = len(payload)
        self._outstanding[seq] = 0
        closed = []
        for rl in request.resource_logs:
            resource = logs_pb2.ResourceLogs(resource=rl.resource, schema_url=rl.schema_url)
            resource_attrs = {kv.key: any_value_text(kv.value) for kv in rl.resource.attributes}
            for sl in rl.scope_logs:
                scope = logs_pb2.ScopeLogs(scope=sl.scope, schema_url=sl.schema_url)
                for record in sl.log_records:
                    ident = next(self._ids)
                    self._items[ident] = _Item(seq, resource, scope, record)
                    self._outstanding[seq] += 1
                    attributes = dict(resource_attrs)
                    attributes.update({kv.key: any_value_text(kv.value) for kv in record.attributes})
                    key = record.trace_id.hex() if any(record.trace_id) else None
                    closed.extend(self._sequencer.add(
                        LogRecord(message=any_value_text(record.body), key=key, attributes=attributes,
                                  source_line=ident), now_s=now))
        self.metrics.records_received.inc(self._outstanding[seq])
        self._ack_done()
        return closed

    def _deliver(self, sequences) -> bool:
        started = time.monotonic()
        try:
            verdicts, status = self._scorer([ClosedLines.of(s) for s in sequences], self._score_timeout_s), STATUS_OK
        except ScoringFailed as exc:
            verdicts, status = [None] * len(sequences), exc.status
            logger.warning("forwarding %d sequences unscored (%s)", len(sequences), exc)
        except Exception as exc:
            verdicts, status = [None] * len(sequences), STATUS_REJECTED
            logger.warning("scoring failed (%s); forwarding unscored", exc)
        self.metrics.scoring_seconds.observe(time.monotonic() - started)
        items = []
        for sequence, verdict in zip(sequences, verdicts):
            for position, ident in enumerate(sequence.source_lines):
                item = self._items[ident]
                set_attributes(item.record, record_annotations(sequence.id, sequence.key or "", position, verdict, status,
                                                                      closed_by=sequence.closed_by))
                items.append((ident, item))
        if not self._forwarder.send([item for _, item in items]):
            return False  # stopping: these entries stay unacknowledged and are replayed next start
        for ident, item in items:
            del self._items[ident]
            self._outstanding[item.entry] -= 1
        self.forwarded += len(items)
        self.metrics.records_forwarded.labels(status).inc(len(items))
        self._ack_done()
        return True

    def _ack_done(self) -> None:
        """Acknowledge the longest prefix of entries whose records all went downstream."""
        done_upto, size = None, 0
        for seq in sorted(self._outstanding):
            if self._outstanding[seq]:
                break
            done_upto = seq
            size += self._sizes.pop(seq)
            del self._outstanding[seq]
        if done_upto is not None:
            self.spool.ack(done_upto, size)
