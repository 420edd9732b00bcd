"""The `logllm.v1.Inference` service over gRPC, plus the token-auth interceptor.

Handlers are registered with tolerant deserializers: a malformed or oversized message becomes
INVALID_ARGUMENT with a message saying what was wrong, rather than gRPC's generic INTERNAL.
"""
from __future__ import annotations

import logging
import time
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Callable, Optional

import grpc

from logllm_plugin.proto.logllm.v1 import inference_pb2 as pb
from logllm_plugin.serving.auth import TokenCheck
from logllm_plugin.serving.batcher import BatcherClosed, DeadlineExpired, QueueFull
from logllm_plugin.records import Verdict
from logllm_plugin.serving.core import (FeedbackUnsupported, InferenceCore, InvalidRequest, NotReady, SequenceIn,
                                       validate)

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Inference"].full_name  # "logllm.v1.Inference"
# Probes (grpc_health_probe, kubelet) and tools (grpcurl, which resolves descriptors through
# reflection even for a health check) must work without the token. Reflection only describes the
# schema, which is public in proto/; Detect/Analyze/ModelInfo still need the token.
STREAMING_PREFIXES = ("/grpc.reflection.",)
UNAUTHENTICATED_EXEMPT = ("/grpc.health.v1.Health/",) + STREAMING_PREFIXES


class _Malformed:
    def __init__(self, reason: str):
        self.reason = reason


def tolerant_deserializer(message_cls, max_bytes: int) -> Callable[[bytes], object]:
    def deserialize(data: bytes):
        if len(data) > max_bytes:
            return _Malformed(f"request is {len(data)} bytes; the limit is {max_bytes}")
        try:
            return message_cls.FromString(data)
        except Exception as exc:  # DecodeError, or invalid UTF-8 in a string field
            return _Malformed(f"not a valid {message_cls.DESCRIPTOR.full_name}: {exc}")

    return deserialize


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        self.code, self.message = code, message


def verdict_message(out) -> pb.Verdict:
    v = out.verdict
    return pb.Verdict(id=v.id, key=out.key, label=v.label, score=v.score, category=v.category,
                      evidence=v.evidence, novel_templates=v.novel_templates, model_version=v.model_version,
                      familiarity=v.familiarity, status=v.status, suppressed=v.suppressed)


def from_verdict_message(v: pb.Verdict) -> Verdict:
    return Verdict(id=v.id, label=v.label, score=v.score, category=v.category, evidence=list(v.evidence),
                   novel_templates=v.novel_templates, model_version=v.model_version,
                   familiarity=v.familiarity, status=v.status or "ok", suppressed=v.suppressed)


def explanation_message(e) -> pb.Explanation:
    return pb.Explanation(summary=e.summary, suggestion=e.suggestion, analyzer=e.analyzer, cached=e.cached,
                          category=e.category, status=e.status,
                          evidence=[pb.EvidenceLine(index=x.index, line=x.line) for x in e.evidence])


class InferenceServicer:
    """Detect / Analyze / ModelInfo on top of an InferenceCore and (optionally) an AnalysisService."""

    def __init__(self, core: InferenceCore, analyzer=None):
        self.core = core
        self.analyzer = analyzer

    def _answer(self, method: str, context, work):
        started, code = time.monotonic(), "INTERNAL"
        in_flight = self.core.metrics.in_flight.labels("grpc")
        in_flight.inc()
        try:
            response = work()
            code = "OK"
            return response
        except _Abort as exc:
            code = exc.code.name
            context.abort(exc.code, exc.message)
        finally:
            in_flight.dec()
            self.core.metrics.answered(method, "grpc", code, time.monotonic() - started)

    def Detect(self, request, context):
        return self._answer("Detect", context, lambda: self._detect(request, context))

    def _detect(self, request, context) -> pb.DetectResponse:
        if isinstance(request, _Malformed):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        sequences = [SequenceIn(list(s.lines), s.id, s.key, s.closed_by) for s in request.sequences]
        wait_s = self.core.timeout_for(context.time_remaining())
        try:
            future = self.core.submit(sequences, time.monotonic() + wait_s)
        except InvalidRequest as exc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        except QueueFull as exc:
            raise _Abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"server busy: {exc}; retry with backoff") from None
        except (NotReady, BatcherClosed) as exc:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, str(exc)) from None
        context.add_callback(future.cancel)  # a caller that hangs up frees its place in the queue
        try:
            verdicts = future.result(timeout=wait_s)
        except (FutureTimeout, DeadlineExpired, CancelledError):
            future.cancel()
            raise _Abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the batch was scored") from None
        except Exception as exc:
            logger.error("Detect failed: %s", exc)
            raise _Abort(grpc.StatusCode.INTERNAL, f"scoring failed: {type(exc).__name__}") from None
        outs = self.core.finish(sequences, verdicts)
        skipped = sum(s.skipped_empty for s in sequences)
        if skipped:  # the proto has no field for it; trailing metadata keeps the count visible
            context.set_trailing_metadata((("logllm-skipped-empty-lines", str(skipped)),))
        return pb.DetectResponse(verdicts=[verdict_message(o) for o in outs],
                                 model_version=self.core.detector.settings.model_version)

    def Analyze(self, request, context):
        return self._answer("Analyze", context, lambda: self._analyze(request, context))

    def _analyze(self, request, context) -> pb.AnalyzeResponse:
        if isinstance(request, _Malformed):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
        if self.analyzer is None:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "no analyzer is configured on this server")
        lines = list(request.sequence.lines)
        if request.HasField("verdict") and request.verdict.label:
            verdict = from_verdict_message(request.verdict)
            try:
                validate([SequenceIn(lines)], self.core.config)
            except InvalidRequest as exc:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
        else:  # no verdict given: detect first, through the same batcher as Detect
            one = pb.DetectRequest(sequences=[request.sequence])
            response = self._detect(one, context)
            verdict = from_verdict_message(response.verdicts[0])
        try:
            explanation = self.analyzer.explain([lines], [verdict])[0]
        except Exception as exc:
            logger.error("Analyze failed: %s", exc)
            raise _Abort(grpc.StatusCode.INTERNAL, f"analysis failed: {type(exc).__name__}") from None
        return pb.AnalyzeResponse(explanation=explanation_message(explanation))

    def Feedback(self, request, context):
        def work():
            if isinstance(request, _Malformed):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)
            if not self.core.ready:
                raise _Abort(grpc.StatusCode.UNAVAILABLE, self.core.load_error or "the model is still loading")
            if request.label not in ("normal", "anomalous"):
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, 'label must be "normal" or "anomalous"')
            if not request.sequences:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "feedback holds no sequence")
            try:
                result = self.core.feedback([SequenceIn(list(s.lines), s.id, s.key) for s in request.sequences],
                                            request.label)
            except InvalidRequest as exc:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from None
            except FeedbackUnsupported as exc:
                raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
            return pb.FeedbackResponse(**result)

        return self._answer("Feedback", context, work)

    def ModelInfo(self, request, context):
        def work():
            if not self.core.ready:
                raise _Abort(grpc.StatusCode.UNAVAILABLE, self.core.load_error or "the model is still loading")
            return pb.ModelInfoResponse(**self.core.model_info())

        return self._answer("ModelInfo", context, work)


def inference_handler(servicer: InferenceServicer, max_request_bytes: int) -> grpc.GenericRpcHandler:
    def unary(fn, request_cls, response_cls):
        return grpc.unary_unary_rpc_method_handler(
            fn, request_deserializer=tolerant_deserializer(request_cls, max_request_bytes),
            response_serializer=response_cls.SerializeToString)

    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Detect": unary(servicer.Detect, pb.DetectRequest, pb.DetectResponse),
        "Analyze": unary(servicer.Analyze, pb.AnalyzeRequest, pb.AnalyzeResponse),
        "ModelInfo": unary(servicer.ModelInfo, pb.ModelInfoRequest, pb.ModelInfoResponse),
        "Feedback": unary(servicer.Feedback, pb.FeedbackRequest, pb.FeedbackResponse),
    })


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Rejects calls without `authorization: Bearer <token>` (health checks and reflection excepted)."""

    def __init__(self, check: TokenCheck, on_reject: Optional[Callable[[str], None]] = None):
        self._check = check
        self._on_reject = on_reject

        def reject(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        # The rejecting handler must have the method's shape: reflection is a bidirectional stream.
        self._reject_unary = grpc.unary_unary_rpc_method_handler(reject)
        self._reject_stream = grpc.stream_stream_rpc_method_handler(reject)

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method.startswith(UNAUTHENTICATED_EXEMPT):
            return continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        if self._check.allows(metadata.get("authorization")):
            return continuation(handler_call_details)
        if self._on_reject:
            self._on_reject(method)
        return self._reject_stream if method.startswith(STREAMING_PREFIXES) else self._reject_unary
