"""Python client for the inference server.

    from logllm_plugin.client import InferenceClient
    with InferenceClient("localhost:50051", token="...", tls_ca="ca.pem") as client:
        verdicts = client.detect([["line 1", "line 2"], ["other sequence"]])
        verdicts[0].label, verdicts[0].score, verdicts[0].category, verdicts[0].evidence

Several targets are used round-robin; UNAVAILABLE (server down, draining) and RESOURCE_EXHAUSTED
(queue full) are retried on the next target with jittered exponential backoff, always inside the
call's deadline. Large inputs are sent in chunks of `chunk_sequences`. `AsyncInferenceClient` is
the same over grpc.aio.
"""
from __future__ import annotations

import itertools
import random
import time
from pathlib import Path
from typing import Optional, Sequence, Union

import grpc

from logllm_plugin.proto.logllm.v1 import inference_pb2 as pb
from logllm_plugin.records import LogSequence, Verdict

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
DETECT = "/logllm.v1.Inference/Detect"
MODEL_INFO = "/logllm.v1.Inference/ModelInfo"
FEEDBACK = "/logllm.v1.Inference/Feedback"
ANALYZE = "/logllm.v1.Inference/Analyze"

SequenceLike = Union[Sequence[str], LogSequence]


def _pem(value: Optional[Union[str, bytes, Path]]) -> Optional[bytes]:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


def _credentials(tls_ca, tls_cert, tls_key) -> Optional[grpc.ChannelCredentials]:
    if tls_ca is None and tls_cert is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=_pem(tls_ca), private_key=_pem(tls_key),
                                        certificate_chain=_pem(tls_cert))


def to_request(sequences: Sequence[SequenceLike]) -> pb.DetectRequest:
    out = []
    for n, s in enumerate(sequences):
        if isinstance(s, LogSequence):
            out.append(pb.Sequence(id=s.id, key=s.key or "", lines=s.lines, closed_by=s.closed_by or ""))
        elif isinstance(s, str):
            raise TypeError("detect() takes a list of sequences (lists of lines), not a list of lines")
        else:
            out.append(pb.Sequence(id=str(n), lines=list(s), closed_by=getattr(s, "closed_by", None) or ""))
    return pb.DetectRequest(sequences=out)


def from_response(response: pb.DetectResponse) -> list[Verdict]:
    return [Verdict(id=v.id, label=v.label, score=v.score, category=v.category, evidence=list(v.evidence),
                    novel_templates=v.novel_templates, model_version=v.model_version, familiarity=v.familiarity,
                    status=v.status or "ok", suppressed=v.suppressed) for v in response.verdicts]


def _blank_only(sequence: SequenceLike) -> bool:
    lines = sequence.lines if isinstance(sequence, LogSequence) else sequence
    return not isinstance(lines, str) and len(lines) > 0 and all(isinstance(x, str) and not x.strip() for x in lines)


def split_blank(sequences: Sequence[SequenceLike]) -> tuple[list[int], dict[int, Verdict]]:
    """(indexes to send, verdicts for the rest). The server skips blank lines and refuses a sequence
    with nothing else (INVALID_ARGUMENT, which would fail the whole request); such a sequence has
    nothing to judge, so the client answers it itself: normal, score 0, no evidence."""
    send, answered = [], {}
    for n, s in enumerate(sequences):
        if _blank_only(s):
            answered[n] = Verdict(id=s.id if isinstance(s, LogSequence) else str(n), label="normal", score=0.0,
                                  category="normal", evidence=[], novel_templates=0)
        else:
            send.append(n)
    return send, answered


def merge_blank(sequences, send: list[int], answered: dict[int, Verdict], scored: list[Verdict]) -> list[Verdict]:
    for n, verdict in zip(send, scored):
        if not isinstance(sequences[n], LogSequence):
            verdict.id = str(n)  # ids of plain line lists are positions in the caller's list
        answered[n] = verdict
    return [answered[n] for n in range(len(sequences))]


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Full jitter: uniform in [0, min(max, base * 2^attempt)]."""
    return random.uniform(0.0, min(max_s, base_s * (2 ** attempt)))


# gRPC backs off reconnecting up to 120 s by default: after a server restart, callers (the SDK
# processor, the bridge) would go on marking records `unavailable` that long. 5 s is enough to
# spare a down server and short enough to pick a restarted one up quickly.
CHANNEL_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 500), ("grpc.max_reconnect_backoff_ms", 5000))


class _Attempts:
    """One call's retry budget: the time left, and the pause before the next try (None: give up)."""

    def __init__(self, client: "_Base", timeout_s: Optional[float]):
        self._client = client
        self.deadline = time.monotonic() + (timeout_s or client.timeout_s)
        self.attempt = 0

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer from {', '.join(self._client.targets)} within the deadline")
        return left

    def pause_after(self, code: grpc.StatusCode) -> Optional[float]:
        pause = backoff_s(self.attempt, *self._client.backoff)
        if code not in RETRYABLE or time.monotonic() + pause >= self.deadline:
            return None
        self.attempt += 1
        return pause


class _Base:
    def __init__(self, target: Union[str, Sequence[str]], *, token: Optional[str] = None, tls_ca=None,
                 tls_cert=None, tls_key=None, timeout_s: float = 10.0, chunk_sequences: int = 256,
                 backoff_base_s: float = 0.05, backoff_max_s: float = 1.0):
        targets = [target] if isinstance(target, str) else list(target)
        if not targets or not all(targets):
            raise ValueError("give at least one target HOST:PORT")
        if timeout_s <= 0 or chunk_sequences < 1:
            raise ValueError("timeout_s must be > 0 and chunk_sequences >= 1")
        self.targets = targets
        self.timeout_s = timeout_s
        self.chunk_sequences = chunk_sequences
        self.backoff = (backoff_base_s, backoff_max_s)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._credentials = _credentials(tls_ca, tls_cert, tls_key)
        self._next = itertools.cycle(range(len(targets)))

    def _chunks(self, sequences: Sequence[SequenceLike]):
        for start in range(0, len(sequences), self.chunk_sequences):
            chunk = sequences[start : start + self.chunk_sequences]
            request = to_request(chunk)
            for n, s in enumerate(request.sequences):  # ids stay global across chunks
                if not isinstance(chunk[n], LogSequence):
                    s.id = str(start + n)
            yield request


class InferenceClient(_Base):
    def __init__(self, target: Union[str, Sequence[str]], **kwargs):
        super().__init__(target, **kwargs)
        self._channels = [self._channel(t) for t in self.targets]
        self._detect = [ch.unary_unary(DETECT, request_serializer=pb.DetectRequest.SerializeToString,
                                       response_deserializer=pb.DetectResponse.FromString) for ch in self._channels]
        self._analyze = [ch.unary_unary(ANALYZE, request_serializer=pb.AnalyzeRequest.SerializeToString,
                                        response_deserializer=pb.AnalyzeResponse.FromString) for ch in self._channels]
        self._info = [ch.unary_unary(MODEL_INFO, request_serializer=pb.ModelInfoRequest.SerializeToString,
                                     response_deserializer=pb.ModelInfoResponse.FromString) for ch in self._channels]
        self._feedback = [ch.unary_unary(FEEDBACK, request_serializer=pb.FeedbackRequest.SerializeToString,
                                         response_deserializer=pb.FeedbackResponse.FromString) for ch in self._channels]

    def _channel(self, target: str) -> grpc.Channel:
        if self._credentials is not None:
            return grpc.secure_channel(target, self._credentials, options=CHANNEL_OPTIONS)
        return grpc.insecure_channel(target, options=CHANNEL_OPTIONS)

    def _call(self, stubs, request, timeout_s: Optional[float]):
        attempts = _Attempts(self, timeout_s)
        while True:
            try:
                return stubs[next(self._next)](request, timeout=attempts.remaining(), metadata=self._metadata)
            except grpc.RpcError as exc:
                pause = attempts.pause_after(exc.code())
                if pause is None:
                    raise
                time.sleep(pause)

    def detect(self, sequences: Sequence[SequenceLike], *, timeout_s: Optional[float] = None) -> list[Verdict]:
        """One verdict per sequence, in order. Raises grpc.RpcError for non-retryable failures."""
        send, answered = split_blank(sequences)
        if answered:
            scored = self.detect([sequences[n] for n in send], timeout_s=timeout_s) if send else []
            return merge_blank(sequences, send, answered, scored)
        verdicts: list[Verdict] = []
        for request in self._chunks(sequences):
            verdicts.extend(from_response(self._call(self._detect, request, timeout_s)))
        return verdicts

    def analyze(self, lines: Sequence[str], verdict: Optional[Verdict] = None, *,
                timeout_s: Optional[float] = None) -> dict:
        """The server's explanation of one sequence (it detects first when no verdict is given)."""
        from google.protobuf.json_format import MessageToDict

        request = pb.AnalyzeRequest(sequence=pb.Sequence(lines=list(lines)))
        if verdict is not None:
            request.verdict.CopyFrom(pb.Verdict(id=verdict.id, label=verdict.label, score=verdict.score,
                                                category=verdict.category, evidence=verdict.evidence,
                                                novel_templates=verdict.novel_templates,
                                                model_version=verdict.model_version))
        response = self._call(self._analyze, request, timeout_s)
        return MessageToDict(response.explanation, preserving_proto_field_name=True,
                             always_print_fields_with_no_presence=True)

    def model_info(self, *, timeout_s: Optional[float] = None) -> dict:
        from google.protobuf.json_format import MessageToDict

        response = self._call(self._info, pb.ModelInfoRequest(), timeout_s)
        return MessageToDict(response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)

    def feedback(self, sequences: Sequence[Sequence[str]], label: str, *, timeout_s: Optional[float] = None) -> dict:
        """Tell a learning server these sequences are `normal` (or `anomalous`); returns accepted/stored."""
        request = pb.FeedbackRequest(sequences=[pb.Sequence(lines=list(s)) for s in sequences], label=label)
        response = self._call(self._feedback, request, timeout_s)
        return {"accepted": response.accepted, "stored": response.stored}

    def close(self) -> None:
        for ch in self._channels:
            ch.close()

    def __enter__(self) -> "InferenceClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncInferenceClient(_Base):
    """`await client.detect(sequences)`; create and use it inside one running event loop."""

    def __init__(self, target: Union[str, Sequence[str]], **kwargs):
        super().__init__(target, **kwargs)
        aio = grpc.aio
        self._channels = [aio.secure_channel(t, self._credentials, options=CHANNEL_OPTIONS) if self._credentials
                          else aio.insecure_channel(t, options=CHANNEL_OPTIONS)
                          for t in self.targets]
        self._detect = [ch.unary_unary(DETECT, request_serializer=pb.DetectRequest.SerializeToString,
                                       response_deserializer=pb.DetectResponse.FromString) for ch in self._channels]

    async def detect(self, sequences: Sequence[SequenceLike], *, timeout_s: Optional[float] = None) -> list[Verdict]:
        import asyncio

        send, answered = split_blank(sequences)
        if answered:
            scored = await self.detect([sequences[n] for n in send], timeout_s=timeout_s) if send else []
            return merge_blank(sequences, send, answered, scored)
        verdicts: list[Verdict] = []
        for request in self._chunks(sequences):
            attempts = _Attempts(self, timeout_s)
            while True:
                try:
                    stub = self._detect[next(self._next)]
                    response = await stub(request, timeout=attempts.remaining(), metadata=self._metadata)
                    break
                except grpc.aio.AioRpcError as exc:
                    pause = attempts.pause_after(exc.code())
                    if pause is None:
                        raise
                    await asyncio.sleep(pause)
            verdicts.extend(from_response(response))
        return verdicts

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()

    async def __aenter__(self) -> "AsyncInferenceClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
