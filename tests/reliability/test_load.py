"""Load: many concurrent callers against bounded queues.

The promise: queues stay bounded, and being full is an answer, not a hang or a loss: the server
says RESOURCE_EXHAUSTED (retryable) or INVALID_ARGUMENT for bad requests and answers every good
one once; the SDK processor's on_emit never blocks, and a record that finds its queue full goes on
at once marked `rejected`, each record exactly once.
"""
from __future__ import annotations

import threading
import time

import grpc
import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from collectors.otel import LogLLMProcessor, ProcessorConfig
from logllm_plugin.proto.logllm.v1 import inference_pb2 as pb
from logllm_plugin.records import Verdict
from tests.reliability.conftest import wait_for
from logllm_plugin.sequencer import SequencerConfig

pytestmark = [pytest.mark.reliability, pytest.mark.server]


def test_a_full_processor_queue_never_blocks_the_application_and_loses_nothing():
    """Promise: with a scorer stuck and a 20-record queue, 8 threads emitting 50 records each are
    never blocked (each on_emit returns in well under a second), the queue never holds more than
    its bound, the overflow passes on at once marked `rejected`, and once the scorer is released
    every record has been passed on exactly once, in order per thread for the queued ones."""
    release = threading.Event()

    def stuck_scorer(sequences, timeout_s):
        release.wait(30)
        return [Verdict(id=str(n), label="normal", score=0.1, category="normal", evidence=[], novel_templates=0)
                for n, _ in enumerate(sequences)]

    exporter = InMemoryLogRecordExporter()
    processor = LogLLMProcessor(SimpleLogRecordProcessor(exporter), scorer=stuck_scorer, config=ProcessorConfig(
                                    SequencerConfig(max_lines=5, idle_s=0.1), latency_budget_s=60, max_queue_records=20))
    provider = LoggerProvider()
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("app")
    slowest, peak_queue = [0.0], [0]

    def emit(worker):
        for n in range(50):
            started = time.monotonic()
            logger.emit(body=f"worker {worker} step {n}", attributes={"service.name": f"w{worker}", "n": n})
            slowest[0] = max(slowest[0], time.monotonic() - started)
            peak_queue[0] = max(peak_queue[0], processor._queue.qsize())

    threads = [threading.Thread(target=emit, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    rejected_early = [dict(r.log_record.attributes) for r in exporter.get_finished_logs()]
    release.set()
    assert processor.force_flush(60_000)
    provider.shutdown()

    assert slowest[0] < 0.5 and peak_queue[0] <= 20
    assert rejected_early and {a["logllm.status"] for a in rejected_early} == {"rejected"}
    out = [dict(r.log_record.attributes) for r in exporter.get_finished_logs()]
    assert len(out) == 400
    for worker in range(8):
        mine = [a for a in out if a["service.name"] == f"w{worker}"]
        assert sorted(a["n"] for a in mine) == list(range(50))  # each exactly once
        queued = [a["n"] for a in mine if a["logllm.status"] == "ok"]
        assert queued == sorted(queued)
    assert processor.stats.queue_full == sum(1 for a in out if a["logllm.status"] == "rejected")


def test_concurrent_mixed_traffic_against_a_small_queue_gets_only_defined_answers(start_server, seed_sequences,
                                                                                  seed_model_dir):
    """Promise: 16 clients sending valid and malformed Detect requests as fast as they can to a server
    whose queue holds 8 sequences each get, for every request, OK with one verdict per sequence,
    RESOURCE_EXHAUSTED (queue full, retryable) or INVALID_ARGUMENT (malformed), never anything else;
    the queue never exceeds its bound; and the server still answers afterwards. The model is held
    until the queue has overflowed once, so a full queue is certainly met, not left to timing."""
    from logllm_plugin.detector import Detector
    from tests.integration.conftest import GatedDetector

    gated = GatedDetector(Detector.load(seed_model_dir, device="cpu"))
    server = start_server(loader=lambda: gated, max_queue_sequences=8, max_batch_sequences=4, max_wait_ms=2)
    good = [pb.DetectRequest(sequences=[pb.Sequence(lines=s.lines) for s in seed_sequences[k:k + 3]]).SerializeToString()
            for k in range(0, 30, 3)]
    bad = [b"\xff\x00 not a request", pb.DetectRequest().SerializeToString(),
           pb.DetectRequest(sequences=[pb.Sequence(lines=[])]).SerializeToString()]
    codes: dict[str, int] = {}
    unexpected, peak = [], [0]
    lock = threading.Lock()
    done = threading.Event()

    def watch_queue():
        while not done.is_set():
            peak[0] = max(peak[0], server.core.batcher.queued_sequences)
            time.sleep(0.002)

    def client(k):
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            call = channel.unary_unary("/logllm.v1.Inference/Detect", request_serializer=None,
                                       response_deserializer=pb.DetectResponse.FromString)
            for n in range(20):
                is_bad = (k + n) % 5 == 0
                payload = bad[n % len(bad)] if is_bad else good[(k + n) % len(good)]
                try:
                    response = call(payload, timeout=30)
                    code = "OK"
                    if is_bad or len(response.verdicts) != 3:
                        unexpected.append(("OK", is_bad, len(response.verdicts)))
                except grpc.RpcError as exc:
                    code = exc.code().name
                    if code == "RESOURCE_EXHAUSTED":
                        gated.gate.set()  # the queue overflowed: let the model work again
                    if code not in ("RESOURCE_EXHAUSTED", "INVALID_ARGUMENT") or \
                            (code == "INVALID_ARGUMENT") != is_bad:
                        unexpected.append((code, is_bad, exc.details()))
                with lock:
                    codes[code] = codes.get(code, 0) + 1

    watcher = threading.Thread(target=watch_queue, daemon=True)
    watcher.start()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    gated.gate.set()
    assert not unexpected, unexpected[:5]
    assert sum(codes.values()) == 16 * 20
    assert codes.get("OK") and codes.get("INVALID_ARGUMENT") and codes.get("RESOURCE_EXHAUSTED"), codes
    assert peak[0] <= 8
    wait_for(lambda: server.core.batcher.queued_sequences == 0, 10, "an empty queue")
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = channel.unary_unary("/logllm.v1.Inference/Detect", request_serializer=None,
                                   response_deserializer=pb.DetectResponse.FromString)
        assert len(call(good[0], timeout=30).verdicts) == 3
