"""HTTP/JSON beside gRPC, for people who start with curl (off unless `--http-port` is given).

    POST /v1/detect   {"logs": ["line 1", ...]}  or  {"sequences": [{"lines": [...], "id": "..."}, ...]}
                      (also accepted at /detect, the path the original project documented)
    POST /v1/feedback {"sequences": [[line, ...], ...], "label": "normal"|"anomalous"} (learning mode)
    GET  /v1/model (state learning|training|serving, version, history_sequences, last training),
         /v1/model-info, /healthz, /metrics (Prometheus text)

Every path but /healthz needs the token when one is set (`serve --metrics-port` serves /metrics
without it on a listener of its own). Blank lines are skipped and counted (`skipped_empty_lines`).

Same auth, limits and batching as gRPC: requests go through the same InferenceCore. Errors are
JSON `{"error": "..."}` with 400 (bad JSON or input), 401, 413, 429 (queue full), 503
(loading/draining) or 504 (deadline).
"""
from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from logllm_plugin.serving.auth import TokenCheck
from logllm_plugin.serving.batcher import BatcherClosed, DeadlineExpired, QueueFull
from logllm_plugin.serving.core import FeedbackUnsupported, InferenceCore, InvalidRequest, NotReady, SequenceIn

logger = logging.getLogger(__name__)

DETECT_PATHS = ("/v1/detect", "/detect")
FEEDBACK_PATH = "/v1/feedback"


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def parse_detect_body(body: bytes) -> list[SequenceIn]:
    payload = _json_object(body, 'body must be a JSON object with "logs" (one sequence) or "sequences"')
    if ("logs" in payload) == ("sequences" in payload):
        raise HttpError(400, 'give exactly one of "logs" (a list of lines) or "sequences" (a list of those)')
    raw = [payload["logs"]] if "logs" in payload else payload["sequences"]
    if not isinstance(raw, list):
        raise HttpError(400, '"sequences" must be a list')
    out = []
    for n, item in enumerate(raw):
        seq_id, key, lines, closed_by = "", "", item, ""
        if isinstance(item, dict):
            seq_id, key, lines = str(item.get("id", "")), str(item.get("key", "")), item.get("lines")
            closed_by = str(item.get("closed_by") or "")
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            raise HttpError(400, f"sequence {n}: lines must be a list of strings")
        out.append(SequenceIn(lines, seq_id, key, closed_by))
    return out


def parse_feedback_body(body: bytes) -> tuple[list[SequenceIn], str]:
    payload = _json_object(body, 'body must be a JSON object with "sequences" and "label"')
    label = payload.get("label")
    if label not in ("normal", "anomalous"):
        raise HttpError(400, '"label" must be "normal" or "anomalous"')
    raw = payload.get("sequences")
    if not isinstance(raw, list) or not raw:
        raise HttpError(400, '"sequences" must be a non-empty list of sequences (lists of lines)')
    out = []
    for n, item in enumerate(raw):
        lines = item.get("lines") if isinstance(item, dict) else item
        if not isinstance(lines, list) or not all(isinstance(x, str) for x in lines):
            raise HttpError(400, f"sequence {n}: lines must be a list of strings")
        out.append(SequenceIn(lines))
    return out, label


def _json_object(body: bytes, not_an_object: str) -> dict:
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise HttpError(400, f"body is not UTF-8: {exc}") from None
    except json.JSONDecodeError as exc:
        raise HttpError(400, f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # json raises this, not JSONDecodeError, for [[[[... thousands deep
        raise HttpError(400, "body is not valid JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise HttpError(400, not_an_object)
    return payload


def verdict_json(out) -> dict[str, Any]:
    d = out.verdict.to_dict()
    d["key"] = out.key
    return d


class _Handler(BaseHTTPRequestHandler):
    server: "HttpGateway._Server"
    protocol_version = "HTTP/1.0"  # one request per connection: draining never waits on idle keep-alives

    def log_message(self, fmt: str, *args) -> None:  # route access logs through logging, not stderr
        logger.debug("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", "Bearer")
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self) -> bool:
        return self.server.gateway.check.allows(self.headers.get("Authorization"))

    def do_GET(self) -> None:
        gateway = self.server.gateway
        if self.path == "/healthz":
            ready = gateway.core.ready and not gateway.draining
            self._send(200 if ready else 503, {"status": "SERVING" if ready else "NOT_SERVING"})
        elif not self._authorized():
            self._send(401, {"error": "missing or wrong bearer token"})
        elif self.path == "/metrics":
            self._send(200, gateway.core.metrics.render(), "text/plain; version=0.0.4")
        elif self.path == "/v1/model-info":
            self._send(200 if gateway.core.ready else 503, gateway.core.model_info())
        elif self.path == "/v1/model":
            self._send(200 if gateway.core.ready else 503, gateway.core.model_status())
        else:
            self._send(404, {"error": f"no such path: {self.path}"})

    def do_POST(self) -> None:
        self._body_read = False
        started, status = time.monotonic(), 500
        in_flight = self.server.gateway.core.metrics.in_flight.labels("http")
        in_flight.inc()
        try:
            status, payload = self._feedback() if self.path == FEEDBACK_PATH else self._detect()
        except HttpError as exc:
            status, payload = exc.status, {"error": exc.message}
        except Exception as exc:  # never let a handler thread die without an answer
            logger.exception("HTTP detect failed")
            status, payload = 500, {"error": f"scoring failed: {type(exc).__name__}"}
        in_flight.dec()
        method = "Feedback" if self.path == FEEDBACK_PATH else "Detect"
        self.server.gateway.core.metrics.answered(method, "http", str(status), time.monotonic() - started)
        self._discard_unread_body()
        self._send(status, payload)

    def _discard_unread_body(self, limit: int = 1 << 20) -> None:
        """Read what is left of a body we refused before reading it (401, 404, 503, ...).

        Closing a socket with unread input makes the kernel send a reset, which can destroy the
        error answer before the client reads it (reliably so over TLS). Bodies above `limit` are
        not worth reading for an answer we refuse anyway.
        """
        if self._body_read:
            return
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and 0 < int(length) <= limit:
            try:
                self.rfile.read(int(length))
            except OSError:
                pass

    def _read_body(self) -> bytes:
        gateway = self.server.gateway
        if not self._authorized():
            raise HttpError(401, "missing or wrong bearer token")
        if gateway.draining:
            raise HttpError(503, "the server is shutting down")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise HttpError(411, "Content-Length is required")
        if int(length) > gateway.core.config.max_request_bytes:
            raise HttpError(413, f"body is {length} bytes; the limit is {gateway.core.config.max_request_bytes}")
        body = self.rfile.read(int(length))
        self._body_read = True
        return body

    def _feedback(self) -> tuple[int, Any]:
        gateway = self.server.gateway
        sequences, label = parse_feedback_body(self._read_body())
        if not gateway.core.ready:
            raise HttpError(503, gateway.core.load_error or "the model is still loading")
        try:
            return 200, gateway.core.feedback(sequences, label)
        except InvalidRequest as exc:
            raise HttpError(400, str(exc)) from None
        except FeedbackUnsupported as exc:
            raise HttpError(409, str(exc)) from None

    def _detect(self) -> tuple[int, Any]:
        gateway = self.server.gateway
        if self.path not in DETECT_PATHS:
            raise HttpError(404, f"no such path: {self.path} (POST {DETECT_PATHS[0]} or {FEEDBACK_PATH})")
        sequences = parse_detect_body(self._read_body())
        timeout_s = gateway.core.config.default_deadline_s
        if self.headers.get("X-Timeout-S"):
            try:
                timeout_s = gateway.core.timeout_for(float(self.headers["X-Timeout-S"]))
            except ValueError:
                raise HttpError(400, "X-Timeout-S must be a number of seconds") from None
        try:
            future = gateway.core.submit(sequences, gateway.core.deadline_from(timeout_s))
        except InvalidRequest as exc:
            raise HttpError(400, str(exc)) from None
        except QueueFull as exc:
            raise HttpError(429, f"server busy: {exc}; retry with backoff") from None
        except (NotReady, BatcherClosed) as exc:
            raise HttpError(503, str(exc)) from None
        try:
            verdicts = future.result(timeout=max(0.0, timeout_s))
        except (FutureTimeout, DeadlineExpired, CancelledError):
            future.cancel()
            raise HttpError(504, "deadline passed before the batch was scored") from None
        outs = gateway.core.finish(sequences, verdicts)
        return 200, {"verdicts": [verdict_json(o) for o in outs],
                     "model_version": gateway.core.detector.settings.model_version,
                     "skipped_empty_lines": sum(s.skipped_empty for s in sequences)}


class HttpGateway:
    class _Server(ThreadingHTTPServer):
        daemon_threads = False  # server_close() joins handler threads: in-flight requests finish
        block_on_close = True
        gateway: "HttpGateway"
        tls_context: Optional[ssl.SSLContext] = None

        def finish_request(self, request, client_address):
            if self.tls_context is not None:  # handshake in the connection's own thread, not in accept()
                try:
                    request = self.tls_context.wrap_socket(request, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    logger.info("TLS handshake with %s failed: %s", client_address[0], exc)
                    return
                try:
                    super().finish_request(request, client_address)
                finally:
                    request.close()  # wrap_socket detached the original, which shutdown_request closes
                return
            super().finish_request(request, client_address)

    def __init__(self, core: InferenceCore, check: TokenCheck, host: str, port: int,
                 tls_context: Optional[ssl.SSLContext] = None):
        self.core = core
        self.check = check
        self.draining = False
        self._server = self._Server((host, port), _Handler)
        self._server.gateway = self
        self._server.tls_context = tls_context
        self._thread = threading.Thread(target=self._server.serve_forever, name="logllm-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Refuse new detect calls, stop accepting, wait for in-flight handlers."""
        self.draining = True
        self._server.shutdown()
        self._server.server_close()
