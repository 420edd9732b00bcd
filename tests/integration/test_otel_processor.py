"""LogLLMProcessor inside a real OpenTelemetry SDK LoggerProvider."""
from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from collectors.otel import LogLLMProcessor, ProcessorConfig
from collectors.scoring import local_scorer
from logllm_plugin.sequencer import SequencerConfig
from tests.integration.conftest import GatedDetector

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def seed_detector(seed_model_dir):
    from logllm_plugin.detector import Detector

    return Detector.load(seed_model_dir, device="cpu")


SEQUENCER_SETTINGS = {f.name for f in dataclasses.fields(SequencerConfig)}


def pipeline(latency_budget_s=5.0, **kwargs):
    """A provider with the processor; sequencer settings (max_lines, idle_s, ...) go to its SequencerConfig."""
    sequencer = SequencerConfig(**{k: kwargs.pop(k) for k in list(kwargs) if k in SEQUENCER_SETTINGS})
    exporter = InMemoryLogRecordExporter()
    processor = LogLLMProcessor(SimpleLogRecordProcessor(exporter), config=ProcessorConfig(sequencer, latency_budget_s),
                                **kwargs)
    provider = LoggerProvider(resource=Resource.create({"service.name": "checkout"}))
    provider.add_log_record_processor(processor)
    return provider, processor, exporter


def attrs(exported):
    return [dict(r.log_record.attributes) for r in exported.get_finished_logs()]


def test_every_record_passes_exactly_once_in_order_per_key_under_concurrent_emitters(seed_detector, seed_sequences):
    provider, processor, exporter = pipeline(scorer=local_scorer(detector=seed_detector), max_lines=10)
    logger = provider.get_logger("app")
    lines = [line for s in seed_sequences[:20] for line in s.lines][:120]
    assert len(lines) == 120

    def emit(worker):
        for n, line in enumerate(lines[:120]):
            logger.emit(body=line, attributes={"service.name": f"svc-{worker}", "n": n})

    threads = [threading.Thread(target=emit, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert processor.force_flush(60_000)
    out = attrs(exporter)
    assert len(out) == 8 * 120
    for worker in range(8):
        mine = [a["n"] for a in out if a["service.name"] == f"svc-{worker}"]
        assert mine == list(range(120))  # each once, in order
    assert {a["logllm.status"] for a in out} == {"ok"}
    assert {a["logllm.anomaly.label"] for a in out} <= {"normal", "anomalous"}
    provider.shutdown()


def test_annotations_equal_local_detect_on_the_same_sequences(seed_detector, seed_sequences):
    picked = [s for s in seed_sequences[:40] if len(s.lines) == 15][:12]
    provider, processor, exporter = pipeline(scorer=local_scorer(detector=seed_detector), max_lines=15)
    logger = provider.get_logger("app")
    for k, seq in enumerate(picked):
        for line in seq.lines:
            logger.emit(body=line, attributes={"service.name": f"seq-{k}"})
    assert processor.force_flush(60_000)
    expected = seed_detector.detect(picked)
    out = attrs(exporter)
    assert any(v.label == "anomalous" for v in expected) and any(v.label == "normal" for v in expected)
    for k, verdict in enumerate(expected):
        mine = [a for a in out if a["service.name"] == f"seq-{k}"]
        assert [a["logllm.sequence.position"] for a in mine] == list(range(15))
        assert {a["logllm.anomaly.label"] for a in mine} == {verdict.label}
        assert mine[0]["logllm.anomaly.score"] == pytest.approx(verdict.score, abs=1e-6)
        assert [p for p, a in enumerate(mine) if a["logllm.evidence"]] == verdict.evidence
        assert len({a["logllm.sequence.id"] for a in mine}) == 1
    provider.shutdown()


def test_a_dead_server_leaves_every_record_marked_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    provider, processor, exporter = pipeline(target=f"127.0.0.1:{dead}", latency_budget_s=1.0, max_lines=5)
    logger = provider.get_logger("app")
    for n in range(12):
        logger.emit(body=f"payment step {n} done", attributes={"n": n})
    assert processor.force_flush(30_000)
    out = attrs(exporter)
    assert [a["n"] for a in out] == list(range(12))
    assert {a["logllm.status"] for a in out} == {"unavailable"}
    assert {a["logllm.anomaly.label"] for a in out} == {"unscored"}
    provider.shutdown()


def test_a_slow_server_gives_timeout_within_the_latency_budget(start_server, seed_model_dir):
    from logllm_plugin.detector import Detector

    gated = GatedDetector(Detector.load(seed_model_dir, device="cpu"))
    server = start_server(loader=lambda: gated)
    provider, processor, exporter = pipeline(target=f"127.0.0.1:{server.port}", latency_budget_s=1.0, max_lines=3)
    logger = provider.get_logger("app")
    started = time.monotonic()
    for n in range(3):
        logger.emit(body=f"order {n} accepted", attributes={"n": n})
    while len(exporter.get_finished_logs()) < 3 and time.monotonic() - started < 10:
        time.sleep(0.02)
    took = time.monotonic() - started
    gated.gate.set()
    out = attrs(exporter)
    assert [a["n"] for a in out] == [0, 1, 2]
    assert {a["logllm.status"] for a in out} == {"timeout"}
    assert took < 1.0 + 0.5  # the budget, plus scheduling slack
    provider.shutdown()


def test_shutdown_flushes_open_sequences(seed_detector):
    provider, processor, exporter = pipeline(scorer=local_scorer(detector=seed_detector), idle_s=60, max_lines=50,
                                             latency_budget_s=120)
    logger = provider.get_logger("app")
    for n in range(7):
        logger.emit(body=f"step {n}", attributes={"n": n})
    time.sleep(0.2)
    assert exporter.get_finished_logs() == ()  # still open: idle and age are far away
    provider.shutdown()
    assert [a["n"] for a in attrs(exporter)] == list(range(7))


def test_its_own_logs_pass_through_unscored_without_recursion():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    provider, processor, exporter = pipeline(target=f"127.0.0.1:{dead}", latency_budget_s=0.5, max_lines=2)
    handler = LoggingHandler(logger_provider=provider)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logging.getLogger("app.orders").warning("order 1 failed")
        logging.getLogger("app.orders").warning("order 2 failed")
        assert processor.force_flush(30_000)
    finally:
        root.removeHandler(handler)
    out = attrs(exporter)
    app = [a for a, r in zip(out, exporter.get_finished_logs()) if r.log_record.body.startswith("order")]
    own = [a for a, r in zip(out, exporter.get_finished_logs()) if not r.log_record.body.startswith("order")]
    assert len(app) == 2 and {a["logllm.status"] for a in app} == {"unavailable"}
    assert own, "the processor's warning about the dead server should have been logged and passed on"
    assert all("logllm.status" not in a for a in own)
    assert processor.stats.records == 2  # only the application's records were sequenced
    provider.shutdown()


@pytest.mark.slow
def test_in_a_python_service_the_processor_learns_the_services_normal(tmp_path):
    """The SDK processor scoring in-process with learning mode (the README's `LearningDetector.open`):
    records pass through `learning` until enough sequences arrived, then the learned version scores."""
    from logllm_plugin.config import load_config
    from logllm_plugin.data.generate import GenerateOptions, generate
    from logllm_plugin.learning.learner import LearningDetector

    config = load_config(overrides={"learning": {"min_sequences": 300, "poll_s": 0.5, "epochs": 4}}, environ={})
    learner = LearningDetector.open(tmp_path / "learn", config=config, threads=1)
    provider, processor, exporter = pipeline(scorer=local_scorer(detector=learner), max_lines=15)
    logger = provider.get_logger("app")
    requests = [r["lines"] for r in generate(GenerateOptions(n=400, seed=3, anomaly_rate=0.0, noise_rate=0.1))]
    try:
        for n, lines in enumerate(requests[:300]):
            for line in lines:
                logger.emit(body=line, attributes={"request": f"r{n}"})
            assert processor.force_flush(60_000)  # one request, one sequence
        learning = attrs(exporter)
        assert len(learning) == sum(len(r) for r in requests[:300])
        assert {(a["logllm.status"], a["logllm.anomaly.label"]) for a in learning} == {("learning", "unscored")}
        # the history keeps why each sequence closed (force_flush ends them: `end`), for the trainer's edges
        edges = [e.edge for e in learner.history.entries()]
        assert len(edges) == 300 and "end" in edges and None not in edges
        deadline = time.monotonic() + 900
        while learner.state != "serving" and time.monotonic() < deadline:
            time.sleep(1)
        assert learner.state == "serving", learner.last_outcome
        exporter.clear()
        for n, lines in enumerate(requests[300:340]):
            for line in lines:
                logger.emit(body=line, attributes={"request": f"later{n}"})
            assert processor.force_flush(60_000)
        scored = attrs(exporter)
        assert {a["logllm.status"] for a in scored} == {"ok"}
        assert {a["logllm.model.version"] for a in scored} == {"learn/v000001"}
        assert min(a["logllm.sequence.familiarity"] for a in scored) > 0.5
    finally:
        provider.shutdown()
        learner.close()
