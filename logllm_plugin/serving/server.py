"""Server lifecycle: bind, load and warm up the model, serve, drain.

The ports open first with health NOT_SERVING, so orchestrators can probe during a slow model
load; the model loads in a background thread, is warmed up, and only then does health turn
SERVING. Draining (SIGTERM/SIGINT or `stop()`) turns health NOT_SERVING first, then refuses new
calls while in-flight ones finish within `grace_s`, then stops the batcher.
"""
from __future__ import annotations

import logging
import signal
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from logllm_plugin.config import ConfigError, ServerConfig
from logllm_plugin.serving.auth import TokenCheck, load_token
from logllm_plugin.serving.core import InferenceCore
from logllm_plugin.serving.grpc_service import SERVICE_NAME, InferenceServicer, TokenAuthInterceptor, inference_handler
from logllm_plugin.serving.http_gateway import HttpGateway
from logllm_plugin.serving.metrics import ServerMetrics

logger = logging.getLogger(__name__)


def _read(path: Optional[str], what: str) -> Optional[bytes]:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError([f"{what} {path}: {exc.strerror or exc}"]) from None


class InferenceServer:
    def __init__(self, config: ServerConfig, load_detector: Callable[[], object],
                 analysis_factory: Optional[Callable[[object], object]] = None):
        """`analysis_factory(detector)` builds the AnalysisService behind Analyze (None: UNIMPLEMENTED)."""
        problems = config.problems()
        if problems:
            raise ConfigError(problems)
        self.config = config
        self._load_detector = load_detector
        self.metrics = ServerMetrics()
        self.core = InferenceCore(config, self.metrics)
        self.check = TokenCheck(load_token(config))
        self._cert, self._key = _read(config.tls_cert, "server.tls_cert"), _read(config.tls_key, "server.tls_key")
        self._client_ca = _read(config.tls_client_ca, "server.tls_client_ca")
        self.health = health.HealthServicer()
        self._grpc: Optional[grpc.Server] = None
        self._http: Optional[HttpGateway] = None
        self._metrics_http = None
        self._ready = threading.Event()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self.port: Optional[int] = None
        self._analysis_factory = analysis_factory
        self._servicer = InferenceServicer(self.core)

    @property
    def http_port(self) -> Optional[int]:
        return self._http.port if self._http else None

    @property
    def metrics_port(self) -> Optional[int]:
        return self._metrics_http.server_port if self._metrics_http else None

    @property
    def tls(self) -> bool:
        return self._cert is not None

    # -- start ---------------------------------------------------------------------------------------
    def start(self) -> "InferenceServer":
        c = self.config
        self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        interceptors = [TokenAuthInterceptor(self.check)] if self.check.enabled else []
        self._grpc = grpc.server(
            ThreadPoolExecutor(max_workers=c.workers, thread_name_prefix="logllm-rpc"),
            interceptors=interceptors,
            options=[
                # The transport limit sits above ours so that our limit answers with a clear
                # INVALID_ARGUMENT instead of gRPC's bare RESOURCE_EXHAUSTED.
                ("grpc.max_receive_message_length", 2 * c.max_request_bytes),
                ("grpc.max_send_message_length", 2 * c.max_request_bytes),
            ],
        )
        self._grpc.add_generic_rpc_handlers(
            [inference_handler(self._servicer, c.max_request_bytes)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._grpc)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self._grpc)
        address = f"{c.host}:{c.port}"
        if self.tls:
            creds = grpc.ssl_server_credentials([(self._key, self._cert)], root_certificates=self._client_ca,
                                                require_client_auth=self._client_ca is not None)
            self.port = self._grpc.add_secure_port(address, creds)
        else:
            self.port = self._grpc.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen on {address}")
        self._grpc.start()
        if c.http_port is not None:
            self._http = HttpGateway(self.core, self.check, c.host, c.http_port, self._http_tls())
            self._http.start()
        if c.metrics_port is not None:  # open for Prometheus: counts and latencies, no log content
            from prometheus_client import start_http_server

            self._metrics_http, _ = start_http_server(c.metrics_port, addr=c.host, registry=self.metrics.registry)
        logger.info("listening", extra={"grpc_port": self.port, "http_port": self.http_port, "tls": self.tls,
                                        "auth": self.check.enabled, "metrics_port": self.metrics_port})
        threading.Thread(target=self._load, name="logllm-load", daemon=True).start()
        return self

    def _http_tls(self) -> Optional[ssl.SSLContext]:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        if self.config.tls_client_ca:
            ctx.load_verify_locations(self.config.tls_client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx

    def _load(self) -> None:
        try:
            detector = self._load_detector()
            if self._analysis_factory is not None:
                self._servicer.analyzer = self._analysis_factory(detector)
            self.core.attach(detector)
        except Exception as exc:  # health stays NOT_SERVING; callers get UNAVAILABLE with this reason
            self.core.load_error = f"model failed to load: {exc}"
            logger.error(self.core.load_error)
            return
        if not self._stopped.is_set():
            self._set_health(health_pb2.HealthCheckResponse.SERVING)
            self._ready.set()
            logger.info("serving", extra={"model_version": detector.settings.model_version,
                                          "device": str(detector.device), "dtype": self.core.dtype})

    def _set_health(self, status) -> None:
        self.health.set("", status)
        self.health.set(SERVICE_NAME, status)

    def wait_ready(self, timeout_s: Optional[float] = None) -> bool:
        """True once SERVING; False on timeout. Raises RuntimeError when the model failed to load."""
        deadline_step = 0.05
        waited = 0.0
        while not self._ready.wait(deadline_step):
            if self.core.load_error:
                raise RuntimeError(self.core.load_error)
            waited += deadline_step
            if timeout_s is not None and waited >= timeout_s:
                return False
        return True

    # -- stop ----------------------------------------------------------------------------------------
    def stop(self, grace_s: Optional[float] = None) -> None:
        """Drain: health NOT_SERVING, refuse new calls, let in-flight ones finish, stop the batcher."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
        grace = self.config.grace_s if grace_s is None else grace_s
        logger.info("draining", extra={"grace_s": grace, "in_flight": self._sample("logllm_requests_in_flight")})
        self.health.enter_graceful_shutdown()  # NOT_SERVING for good, before anything else changes
        done = self._grpc.stop(grace) if self._grpc else None
        if self._http:
            self._http.stop()
        if self._metrics_http is not None:
            self._metrics_http.shutdown()
            self._metrics_http.server_close()
        if done is not None:
            done.wait()
        self.core.close(timeout_s=grace)
        logger.info("stopped", extra={"answered_ok": self._sample("logllm_requests_total", code="OK"),
                                      "in_flight": self._sample("logllm_requests_in_flight")})

    def _sample(self, name: str, **labels: str) -> int:
        """Sum of a metric over its other labels (for the drain log lines)."""
        total = 0.0
        for metric in self.metrics.registry.collect():
            for sample in metric.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return int(total)

    def serve_until_signal(self) -> None:
        """Block until SIGTERM/SIGINT (main thread only), then drain."""
        signalled = threading.Event()

        def on_signal(signum, frame):
            logger.info("signal %s received", signal.Signals(signum).name)
            signalled.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
        while not signalled.wait(0.5):
            pass
        self.stop()
