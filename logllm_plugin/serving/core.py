"""What both transports share: request limits, the loaded detector, the batcher, model info.

gRPC and HTTP translate their wire format into `SequenceIn` lists and call `InferenceCore.detect`;
every rule about what is accepted lives here once, so the two endpoints cannot drift apart.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from logllm_plugin import __version__
from logllm_plugin.config import ServerConfig
from logllm_plugin.records import ClosedLines, Verdict
from logllm_plugin.serving.batcher import DynamicBatcher
from logllm_plugin.serving.metrics import ServerMetrics
from logllm_plugin.sequencer import CLOSE_REASONS

logger = logging.getLogger(__name__)


class InvalidRequest(ValueError):
    """The request breaks a limit or is malformed; the message says which and where."""


class NotReady(RuntimeError):
    """The model is still loading (or failed to load)."""


class FeedbackUnsupported(RuntimeError):
    """Feedback sent to a server that does not learn (no `--learn DIR`)."""


# grpcio reports a call without a deadline as ~9e18 s remaining (1.85), which overflows
# `Future.result(timeout=...)`; anything beyond this is treated as "no deadline of its own".
NO_DEADLINE_ABOVE_S = 1e7


@dataclass
class SequenceIn:
    lines: list[str]
    id: str = ""
    key: str = ""
    closed_by: str = ""  # the sender's sequencer's reason (CLOSE_REASONS), or empty
    # Filled by `InferenceCore.submit`: the positions of the lines that are scored (empty and
    # whitespace-only lines are skipped, as the file readers skip them) and how many were skipped.
    kept: Optional[list[int]] = None
    skipped_empty: int = 0


def is_blank(line: str) -> bool:
    return not line.strip()


@dataclass
class VerdictOut:
    verdict: Verdict
    key: str = ""


def validate(sequences: Sequence[SequenceIn], limits: ServerConfig) -> None:
    """Raise InvalidRequest naming the first offending sequence/line; accept everything else."""
    if not sequences:
        raise InvalidRequest("the request holds no sequence")
    if len(sequences) > limits.max_sequences_per_request:
        raise InvalidRequest(f"{len(sequences)} sequences in one request; the limit is {limits.max_sequences_per_request}")
    for n, seq in enumerate(sequences):
        if not seq.lines:
            raise InvalidRequest(f"sequence {n} ({seq.id or 'no id'}) has no line")
        if all(isinstance(line, str) and is_blank(line) for line in seq.lines):
            raise InvalidRequest(f"sequence {n} ({seq.id or 'no id'}) has only empty or whitespace-only lines; "
                                 "they are skipped, so nothing is left to score")
        if seq.closed_by and seq.closed_by not in CLOSE_REASONS:
            raise InvalidRequest(f"sequence {n}: closed_by {seq.closed_by[:40]!r} is not one of {', '.join(CLOSE_REASONS)}")
        if len(seq.lines) > limits.max_lines_per_sequence:
            raise InvalidRequest(f"sequence {n} has {len(seq.lines)} lines; the limit is {limits.max_lines_per_sequence}")
        for k, line in enumerate(seq.lines):
            if not isinstance(line, str):
                raise InvalidRequest(f"sequence {n} line {k} is not a string")
            if len(line) > limits.max_line_bytes or len(line.encode("utf-8", "surrogatepass")) > limits.max_line_bytes:
                raise InvalidRequest(f"sequence {n} line {k} is longer than {limits.max_line_bytes} bytes")


def _scored_part(seq: SequenceIn) -> ClosedLines:
    """The lines to score, with the sender's close reason (a learner keeps it with its history)."""
    return ClosedLines([seq.lines[k] for k in seq.kept], seq.closed_by or None)


class InferenceCore:
    def __init__(self, config: ServerConfig, metrics: Optional[ServerMetrics] = None):
        self.config = config
        self.metrics = metrics or ServerMetrics()
        self.detector = None
        self.dtype = "float32"
        self.batcher: Optional[DynamicBatcher] = None
        self.load_error: Optional[str] = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def attach(self, detector, warmup_lines: Sequence[str] = ("logllm warm-up line 1", "logllm warm-up line 2")) -> None:
        """Take a loaded detector, warm it up (first call pays lazy imports and allocation), start batching."""
        from logllm_plugin.verdict_cache import VerdictCache

        detector.threads = self.config.threads
        from logllm_plugin.detector import resolve_head_dtype

        self.dtype = resolve_head_dtype(self.config.dtype, detector.device.type)
        detector.set_dtype(self.dtype)
        detector.verdict_cache = VerdictCache(self.config.verdict_cache_size)
        detector.warm_up(list(warmup_lines))
        self.detector = detector
        self.batcher = DynamicBatcher(
            self._score,
            max_batch_sequences=self.config.max_batch_sequences,
            max_wait_s=self.config.max_wait_ms / 1000.0,
            max_queue_sequences=self.config.max_queue_sequences,
            observer=self.metrics,
        )
        if hasattr(detector, "start_polling"):  # learning mode / follower: look for new versions
            detector.start_polling()
        logger.info("model %s ready on %s (%s)", detector.settings.model_version or "(none yet: learning)",
                    detector.device, self.dtype)

    def close(self, timeout_s: Optional[float] = None) -> None:
        if self.batcher is not None:
            self.batcher.close(timeout_s)
        if self.detector is not None and hasattr(self.detector, "close"):
            self.detector.close()

    @property
    def ready(self) -> bool:
        return self.batcher is not None

    # -- requests ----------------------------------------------------------------------------------
    def _score(self, lines: list[Sequence[str]]) -> list[Verdict]:
        return self.detector.detect(lines)

    def submit(self, sequences: Sequence[SequenceIn], deadline: float):
        """Validate and queue; returns a Future of verdicts. Raises InvalidRequest, NotReady, QueueFull."""
        if self.batcher is None:
            raise NotReady(self.load_error or "the model is still loading")
        validate(sequences, self.config)
        for seq in sequences:
            seq.kept = [k for k, line in enumerate(seq.lines) if not is_blank(line)]
            seq.skipped_empty = len(seq.lines) - len(seq.kept)
        skipped = sum(s.skipped_empty for s in sequences)
        if skipped:
            self.metrics.skipped_empty_lines.inc(skipped)
        return self.batcher.submit([_scored_part(s) for s in sequences], deadline)

    def finish(self, sequences: Sequence[SequenceIn], verdicts: Sequence[Verdict]) -> list[VerdictOut]:
        out = []
        for n, (seq, verdict) in enumerate(zip(sequences, verdicts)):
            verdict.id = seq.id or str(n)
            if seq.kept is not None and seq.skipped_empty:  # evidence indexes the caller's lines
                verdict.evidence = [seq.kept[i] for i in verdict.evidence]
            out.append(VerdictOut(verdict, seq.key))
        return out

    def timeout_for(self, remaining_s: Optional[float]) -> float:
        """Seconds a request may wait: its own deadline, or `default_deadline_s` when it has none."""
        if remaining_s is None or remaining_s > NO_DEADLINE_ABOVE_S:
            return self.config.default_deadline_s
        return max(0.0, remaining_s)

    def deadline_from(self, remaining_s: Optional[float]) -> float:
        return time.monotonic() + self.timeout_for(remaining_s)

    def model_info(self) -> dict[str, Any]:
        d = self.detector
        c = self.config
        return {
            "model_version": d.settings.model_version if d else "",
            "plugin_version": __version__,
            "threshold": d.settings.threshold if d else 0.0,
            "device": d.device.type if d else "",
            "dtype": self.dtype,
            "categories": list(d.categories) if d else [],
            "templates": len(d.store) if d else 0,
            "max_batch_sequences": c.max_batch_sequences,
            "max_wait_ms": int(c.max_wait_ms),
            "max_lines_per_sequence": c.max_lines_per_sequence,
            "max_sequences_per_request": c.max_sequences_per_request,
            "max_line_bytes": c.max_line_bytes,
            **self.learning_state(),
        }

    def learning_state(self) -> dict[str, Any]:
        """`state`, `version`, `history_sequences` (GET /v1/model): learning mode's, or a fixed model's."""
        d = self.detector
        if d is not None and hasattr(d, "info"):
            info = d.info()
            return {"state": info["state"], "history_sequences": info.get("history_sequences", 0)}
        return {"state": "serving" if d is not None else "loading", "history_sequences": 0}

    def model_status(self) -> dict[str, Any]:
        d = self.detector
        out = {"version": d.settings.model_version if d else "", "threshold": d.settings.threshold if d else 0.0}
        if d is not None and hasattr(d, "info"):
            out.update(d.info())
            out["version"] = d.settings.model_version
        out.update(self.learning_state())
        return out

    def feedback(self, sequences: Sequence[SequenceIn], label: str) -> dict[str, int]:
        """An operator's correction; raises InvalidRequest (bad input) or NotReady (no learning mode)."""
        from logllm_plugin.learning.feedback import FeedbackError

        d = self.detector
        if d is None or not hasattr(d, "add_feedback"):
            raise FeedbackUnsupported("feedback needs learning mode: start the server with `serve --learn DIR`")
        if len(sequences) > self.config.max_sequences_per_request:
            raise InvalidRequest(f"{len(sequences)} sequences in one request; the limit is "
                                 f"{self.config.max_sequences_per_request}")
        for n, seq in enumerate(sequences):
            if not seq.lines:
                raise InvalidRequest(f"sequence {n} is empty")
        validate(sequences, self.config)
        try:
            accepted = d.add_feedback([s.lines for s in sequences], label)
        except FeedbackError as exc:
            raise InvalidRequest(str(exc)) from None
        return {"accepted": accepted, "stored": len(d.feedback)}
