"""The bridge's own metrics, in the Prometheus text format (`otel bridge --metrics-port`).

What an operator watches: is the spool filling (downstream or model too slow), are requests
refused (busy, malformed), and how many records went on scored versus unscored. Each bridge owns
a registry, so two bridges in one process (tests, benchmarks) keep separate counts.
"""
from __future__ import annotations

from typing import Callable, Optional

SCORING_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class BridgeMetrics:
    def __init__(self, spool_pending_bytes: Callable[[], float], spool_max_bytes: float,
                 open_sequences: Callable[[], float]):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("logllm_bridge_export_requests", "Export calls answered, by outcome "
                                "(accepted, malformed, too_large, busy, store_failed)", ["outcome"], registry=self.registry)
        self.records_received = Counter("logllm_bridge_records_received", "Log records taken from the spool",
                                        registry=self.registry)
        self.records_forwarded = Counter("logllm_bridge_records_forwarded", "Log records the downstream accepted, "
                                         "by logllm.status", ["status"], registry=self.registry)
        self.downstream_failures = Counter("logllm_bridge_downstream_failures", "Failed Export calls to the "
                                           "downstream (each is retried)", registry=self.registry)
        self.scoring_seconds = Histogram("logllm_bridge_scoring_seconds", "Duration of one scoring call",
                                         buckets=SCORING_BUCKETS_S, registry=self.registry)
        spool = Gauge("logllm_bridge_spool_pending_bytes", "Bytes of accepted requests not yet forwarded",
                      registry=self.registry)
        spool.set_function(spool_pending_bytes)
        limit = Gauge("logllm_bridge_spool_limit_bytes", "Spool size at which Export answers UNAVAILABLE",
                      registry=self.registry)
        limit.set(spool_max_bytes)
        sequences = Gauge("logllm_bridge_open_sequences", "Sequences still collecting lines", registry=self.registry)
        sequences.set_function(open_sequences)
        self._http = None

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (0: any free port); returns the port."""
        from prometheus_client import start_http_server

        self._http, _ = start_http_server(port, addr=host, registry=self.registry)
        return self._http.server_port

    def close(self) -> None:
        http: Optional[object] = self._http
        if http is not None:
            http.shutdown()
            http.server_close()
            self._http = None
