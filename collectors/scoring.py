"""Where every integration (SDK processor, OTLP bridge, Elasticsearch annotator) gets verdicts:
the gRPC server, or a detector in this process.

A scorer is called `scorer.score(list_of_line_lists, timeout_s) -> list[Verdict]` (or as a
function, the same call; the integrations pass `records.ClosedLines`, lists that also carry why
their sequence closed) and raises `ScoringFailed` with the `logllm.status` to record
(`unavailable`, `timeout`, `rejected`) when it has no answer; `close()` releases what it holds.
"""
from __future__ import annotations

from typing import Optional, Sequence

from collectors.annotations import STATUS_REJECTED, STATUS_TIMEOUT, STATUS_UNAVAILABLE
from logllm_plugin.records import Verdict


class ScoringFailed(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(f"{status}: {reason}")
        self.status = status


class Scorer:
    """What integrations call; subclasses say where the verdicts come from."""

    def score(self, sequences: Sequence[Sequence[str]], timeout_s: float) -> list[Verdict]:
        raise NotImplementedError

    def __call__(self, sequences: Sequence[Sequence[str]], timeout_s: float) -> list[Verdict]:
        return self.score(sequences, timeout_s)

    def close(self) -> None:
        """Nothing to release by default."""


class RemoteScorer(Scorer):
    """The inference server(s) over gRPC, round-robin, one quick retry inside the budget."""

    def __init__(self, target: str | Sequence[str], *, token: Optional[str] = None, tls_ca=None):
        from logllm_plugin.client import InferenceClient

        # Backoff capped low: inside a latency budget of seconds, one quick retry is all there is room for.
        self.client = InferenceClient(target, token=token, tls_ca=tls_ca, backoff_max_s=0.2)

    def score(self, sequences: Sequence[Sequence[str]], timeout_s: float) -> list[Verdict]:
        import grpc

        if timeout_s <= 0:
            raise ScoringFailed(STATUS_TIMEOUT, "no time left in the latency budget")
        try:
            return self.client.detect(list(sequences), timeout_s=timeout_s)  # ClosedLines keep closed_by
        except TimeoutError as exc:
            raise ScoringFailed(STATUS_TIMEOUT, str(exc)) from None
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ScoringFailed(STATUS_TIMEOUT, exc.details() or "deadline exceeded") from None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise ScoringFailed(STATUS_UNAVAILABLE, exc.details() or "server unavailable") from None
            raise ScoringFailed(STATUS_REJECTED, f"{code.name}: {exc.details()}") from None

    def close(self) -> None:
        self.client.close()


class LocalScorer(Scorer):
    """A detector in this process (no latency guarantee beyond the model's own speed)."""

    def __init__(self, detector, threads: Optional[int] = None):
        self.detector = detector
        if threads:
            detector.threads = threads  # applied in whichever thread scores

    def score(self, sequences: Sequence[Sequence[str]], timeout_s: float) -> list[Verdict]:
        try:
            return self.detector.detect(list(sequences))  # ClosedLines keep closed_by for a learner
        except Exception as exc:  # a broken model must not take the application's logging down
            raise ScoringFailed(STATUS_REJECTED, f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        close = getattr(self.detector, "close", None)  # a learning detector stops its poller
        if close is not None:
            close()


def remote_scorer(target: str | Sequence[str], *, token: Optional[str] = None, tls_ca=None) -> RemoteScorer:
    return RemoteScorer(target, token=token, tls_ca=tls_ca)


def local_scorer(model_dir: Optional[str] = None, detector=None, threads: Optional[int] = None) -> LocalScorer:
    if detector is None:
        from logllm_plugin.detector import load_detector

        detector = load_detector(model_dir)
    return LocalScorer(detector, threads=threads)
