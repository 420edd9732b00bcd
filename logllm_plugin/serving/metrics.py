"""The server's own metrics, in the Prometheus text format (served at /metrics).

Each server owns a registry, so two servers in one process (tests, benchmarks) do not mix counts.
"""
from __future__ import annotations

from logllm_plugin.serving.batcher import BatchObserver

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics(BatchObserver):
    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("logllm_requests", "Requests answered, by method, transport and status code",
                                ["method", "transport", "code"], registry=self.registry)
        self.latency = Histogram("logllm_request_latency_seconds", "Time from request to answer",
                                 ["method", "transport"], buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.sequences = Counter("logllm_sequences_scored", "Sequences scored by the model", registry=self.registry)
        self.batch_sizes = Histogram("logllm_batch_sequences", "Sequences per model call",
                                     buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_seconds = Histogram("logllm_batch_seconds", "Duration of one model call",
                                       buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.queue_depth = Gauge("logllm_queue_sequences", "Sequences waiting for the model", registry=self.registry)
        self.in_flight = Gauge("logllm_requests_in_flight", "Requests received and not yet answered",
                               ["transport"], registry=self.registry)
        self.skipped_empty_lines = Counter(
            "logllm_skipped_empty_lines", "Empty or whitespace-only request lines skipped (not scored)",
            registry=self.registry)
        self.expired = Counter("logllm_expired_jobs", "Requests skipped because their deadline passed in the queue",
                               registry=self.registry)

    # BatchObserver
    def batch_ran(self, sequences: int, seconds: float) -> None:
        self.sequences.inc(sequences)
        self.batch_sizes.observe(sequences)
        self.batch_seconds.observe(seconds)

    def queue_changed(self, sequences: int) -> None:
        self.queue_depth.set(sequences)

    def job_expired(self) -> None:
        self.expired.inc()

    def answered(self, method: str, transport: str, code: str, seconds: float) -> None:
        self.requests.labels(method, transport, code).inc()
        self.latency.labels(method, transport).observe(seconds)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
