"""Dynamic batching: merging, limits, deadlines, closing."""
from __future__ import annotations

import threading
import time

import pytest

from logllm_plugin.serving.batcher import BatcherClosed, DeadlineExpired, DynamicBatcher, QueueFull


class Recorder:
    def __init__(self):
        self.batches: list[list] = []
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, sequences):
        self.gate.wait(10)
        self.batches.append(list(sequences))
        return [f"verdict:{s[0]}" for s in sequences]


def far():
    return time.monotonic() + 30


def test_concurrent_jobs_are_merged_up_to_the_batch_limit_and_answered_in_order():
    rec = Recorder()
    rec.gate.clear()
    batcher = DynamicBatcher(rec, max_batch_sequences=4, max_wait_s=0.05)
    blocker = batcher.submit([["b"]], far())
    time.sleep(0.1)  # the worker now waits in the gated call with the blocker
    futures = [batcher.submit([[f"s{k}"], [f"t{k}"]], far()) for k in range(3)]
    rec.gate.set()
    assert blocker.result(5) == ["verdict:b"]
    assert [f.result(5) for f in futures] == [[f"verdict:s{k}", f"verdict:t{k}"] for k in range(3)]
    assert [len(b) for b in rec.batches] == [1, 4, 2]  # whole jobs only, never more than 4 sequences
    batcher.close(5)


def test_a_job_larger_than_the_batch_limit_runs_alone():
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_sequences=2, max_wait_s=0)
    assert len(batcher.submit([[str(k)] for k in range(5)], far()).result(5)) == 5
    assert [len(b) for b in rec.batches] == [5]
    batcher.close(5)


def test_queue_bound_refuses_jobs_that_do_not_fit():
    rec = Recorder()
    rec.gate.clear()
    batcher = DynamicBatcher(rec, max_batch_sequences=1, max_wait_s=0, max_queue_sequences=3)
    running = batcher.submit([["r"]], far())
    time.sleep(0.1)
    queued = batcher.submit([["a"], ["b"], ["c"]], far())
    with pytest.raises(QueueFull):
        batcher.submit([["d"]], far())
    rec.gate.set()
    assert running.result(5) and queued.result(5)
    batcher.close(5)


def test_expired_jobs_are_skipped_not_scored():
    rec = Recorder()
    rec.gate.clear()
    batcher = DynamicBatcher(rec, max_batch_sequences=1, max_wait_s=0)
    running = batcher.submit([["r"]], far())
    time.sleep(0.1)
    expired = batcher.submit([["late"]], time.monotonic() + 0.05)
    time.sleep(0.1)
    rec.gate.set()
    running.result(5)
    with pytest.raises(DeadlineExpired):
        expired.result(5)
    assert all(s != ["late"] for b in rec.batches for s in b)
    batcher.close(5)


def test_close_finishes_queued_work_and_refuses_new():
    rec = Recorder()
    batcher = DynamicBatcher(rec, max_batch_sequences=8, max_wait_s=0.2)
    pending = batcher.submit([["x"]], far())
    batcher.close(5)
    assert pending.result(1) == ["verdict:x"]
    with pytest.raises(BatcherClosed):
        batcher.submit([["y"]], far())


def test_a_failing_batch_reports_to_its_callers_and_the_worker_survives():
    calls = []

    def flaky(sequences):
        calls.append(sequences)
        if len(calls) == 1:
            raise RuntimeError("model blew up")
        return ["ok"] * len(sequences)

    batcher = DynamicBatcher(flaky, max_batch_sequences=1, max_wait_s=0)
    with pytest.raises(RuntimeError, match="blew up"):
        batcher.submit([["a"]], far()).result(5)
    assert batcher.submit([["b"]], far()).result(5) == ["ok"]
    batcher.close(5)


def test_impossible_settings_are_rejected_at_construction():
    with pytest.raises(ValueError):
        DynamicBatcher(lambda s: s, max_batch_sequences=0)
