"""OTLP/HTTP for the bridge: `POST /v1/logs`, binary protobuf or JSON, gzip or not.

For collectors (or SDKs) that export with `otlp_http`. Each request goes through the same
`OtlpBridge.accept` as an OTLP/gRPC Export, so the guarantees are the same: answered 200 once
fsynced in the spool; 503 with Retry-After when the spool is full or cannot be written (the
OTLP/HTTP exporter retries 429/502/503/504), 400/413/415 for requests it must not resend.
Responses follow the OTLP/HTTP spec: the body is an ExportLogsServiceResponse (success) or a
google.rpc.Status (failure) in the request's encoding.
"""
from __future__ import annotations

import gzip
import logging
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as logs_service

logger = logging.getLogger(__name__)

PATH = "/v1/logs"
PROTOBUF, JSON = "application/x-protobuf", "application/json"
STATUS_OF = {"too_large": 413, "malformed": 400, "busy": 503, "store_failed": 503}
RPC_CODE_OF = {400: 3, 413: 3, 415: 3, 503: 14, 404: 5, 411: 3}  # INVALID_ARGUMENT, UNAVAILABLE, NOT_FOUND


class _Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise _Refused(415, f"Content-Encoding {encoding!r} is not supported (gzip, deflate or none)")
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = inflater.decompress(body, limit + 1)  # bounded: a small bomb must not fill memory
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise _Refused(400, f"body is not valid {encoding}: {exc}") from None
    if len(data) > limit:
        raise _Refused(413, f"request inflates past the limit of {limit} bytes")
    return data


class _Handler(BaseHTTPRequestHandler):
    bridge = None  # set on the subclass made per server
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the collector retries a lot; keep access logs out
        logger.debug("otlp-http %s", fmt % args)

    def do_POST(self):  # noqa: N802 (http.server's name)
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        as_json = content_type == JSON
        try:
            if self.path.split("?")[0] != PATH:
                raise _Refused(404, f"not found: {self.path} (OTLP/HTTP logs go to {PATH})")
            if content_type not in (PROTOBUF, JSON):
                raise _Refused(415, f"Content-Type {content_type or 'none'!r}: use {PROTOBUF} or {JSON}")
            length = self.headers.get("Content-Length")
            if length is None:
                raise _Refused(411, "Content-Length is required")
            limit = self.bridge._max_request_bytes
            if int(length) > limit:
                raise _Refused(413, f"request is {length} bytes; the limit is {limit}")
            body = _decompress(self.rfile.read(int(length)),
                               self.headers.get("Content-Encoding", "").strip().lower(), limit)
            if as_json:
                try:
                    body = json_format.Parse(body.decode("utf-8"), logs_service.ExportLogsServiceRequest(),
                                             ignore_unknown_fields=True).SerializeToString()
                except (ValueError, json_format.ParseError, RecursionError) as exc:
                    raise _Refused(400, f"not a valid OTLP/JSON ExportLogsServiceRequest: {exc}") from None
            outcome, reason = self.bridge.accept(body)
            if outcome != "accepted":
                raise _Refused(STATUS_OF[outcome], reason)
        except _Refused as refused:
            self._answer(refused.status, status_pb2.Status(code=RPC_CODE_OF.get(refused.status, 2),
                                                           message=str(refused)), as_json)
            return
        except ValueError:  # Content-Length not a number
            self._answer(400, status_pb2.Status(code=3, message="bad Content-Length"), as_json)
            return
        self._answer(200, logs_service.ExportLogsServiceResponse(), as_json)

    def _answer(self, status: int, message, as_json: bool) -> None:
        body = json_format.MessageToJson(message).encode() if as_json else message.SerializeToString()
        self.send_response(status)
        self.send_header("Content-Type", JSON if as_json else PROTOBUF)
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(body)


class OtlpHttpListener:
    """Serves OTLP/HTTP for `bridge` on host:port (0: a free port) until `stop`."""

    def __init__(self, bridge, host: str, port: int):
        handler = type("BridgeOtlpHttpHandler", (_Handler,), {"bridge": bridge})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "OtlpHttpListener":
        self._thread = threading.Thread(target=self._server.serve_forever, name="logllm-otlp-http", daemon=True)
        self._thread.start()
        logger.info("bridge OTLP/HTTP listening", extra={"http_port": self.port})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
