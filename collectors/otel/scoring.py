"""Where integrations get verdicts: the gRPC server, or a detector in this process.

A scorer is `score(list_of_line_lists, timeout_s) -> list[Verdict]` that raises `ScoringFailed`
with the `logllm.status` to record (`unavailable`, `timeout`, `rejected`) when it has no answer.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from collectors.otel.annotations import STATUS_REJECTED, STATUS_TIMEOUT, STATUS_UNAVAILABLE
from logllm_plugin.records import Verdict

Scorer = Callable[[Sequence[Sequence[str]], float], list[Verdict]]


class ScoringFailed(Exception):
    def __init__(self, status: str, reason: str):
        super().__init__(f"{status}: {reason}")
        self.status = status


def remote_scorer(target: str | Sequence[str], *, token: Optional[str] = None, tls_ca=None) -> Scorer:
    import grpc

    from logllm_plugin.client import InferenceClient

    # Backoff capped low: inside a latency budget of seconds, one quick retry is all there is room for.
    client = InferenceClient(target, token=token, tls_ca=tls_ca, backoff_max_s=0.2)

    def score(sequences: Sequence[Sequence[str]], timeout_s: float) -> list[Verdict]:
        if timeout_s <= 0:
            raise ScoringFailed(STATUS_TIMEOUT, "no time left in the latency budget")
        try:
            return client.detect([list(s) for s in sequences], timeout_s=timeout_s)
        except TimeoutError as exc:
            raise ScoringFailed(STATUS_TIMEOUT, str(exc)) from None
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise ScoringFailed(STATUS_TIMEOUT, exc.details() or "deadline exceeded") from None
            if code == grpc.StatusCode.UNAVAILABLE:
                raise ScoringFailed(STATUS_UNAVAILABLE, exc.details() or "server unavailable") from None
            raise ScoringFailed(STATUS_REJECTED, f"{code.name}: {exc.details()}") from None

    score.close = client.close  # type: ignore[attr-defined]
    return score


def local_scorer(model_dir: Optional[str] = None, detector=None) -> Scorer:
    """In-process scoring (no latency guarantee beyond the model's own speed)."""
    if detector is None:
        from logllm_plugin.detector import load_detector

        detector = load_detector(model_dir)

    def score(sequences: Sequence[Sequence[str]], timeout_s: float) -> list[Verdict]:
        try:
            return detector.detect([list(s) for s in sequences])
        except Exception as exc:  # a broken model must not take the application's logging down
            raise ScoringFailed(STATUS_REJECTED, f"{type(exc).__name__}: {exc}") from None

    score.detector = detector  # type: ignore[attr-defined]
    return score
