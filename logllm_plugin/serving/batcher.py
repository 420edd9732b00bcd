"""Dynamic batching: requests from many callers become one model call.

Each request is a job of one or more sequences. One worker thread takes the oldest job, then
keeps collecting until the batch holds `max_batch_sequences` or `max_wait_s` has passed since that
job arrived, and scores the whole batch in one detector call. The wait only applies under
concurrent load (the previous batch merged several jobs): a lone caller is not delayed for
companions that are not coming. The queue is bounded in sequences:
a job that does not fit is refused at once (`QueueFull`), so a slow model pushes back on callers
instead of growing memory. Jobs whose deadline has passed are skipped, not scored.
"""
from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """The batcher holds `max_queue_sequences` already; the caller should back off."""


class DeadlineExpired(Exception):
    """The job's deadline passed before its batch ran; it was not scored."""


class BatcherClosed(Exception):
    """The batcher is shutting down and takes no new work."""


@dataclass
class _Job:
    sequences: Sequence[Sequence[str]]
    deadline: float  # time.monotonic() after which nobody waits for the answer
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


class BatchObserver:
    """Hooks for metrics; the default does nothing."""

    def batch_ran(self, sequences: int, seconds: float) -> None: ...

    def queue_changed(self, sequences: int) -> None: ...

    def job_expired(self) -> None: ...


class DynamicBatcher:
    def __init__(
        self,
        run_batch: Callable[[list[Sequence[str]]], list],
        *,
        max_batch_sequences: int = 64,
        max_wait_s: float = 0.005,
        max_queue_sequences: int = 4096,
        observer: Optional[BatchObserver] = None,
    ):
        if max_batch_sequences < 1 or max_queue_sequences < 1 or max_wait_s < 0:
            raise ValueError("max_batch_sequences and max_queue_sequences must be >= 1, max_wait_s >= 0")
        self._run_batch = run_batch
        self.max_batch_sequences = max_batch_sequences
        self.max_wait_s = max_wait_s
        self.max_queue_sequences = max_queue_sequences
        self._observer = observer or BatchObserver()
        self._jobs: collections.deque[_Job] = collections.deque()
        self._queued_sequences = 0
        self._cond = threading.Condition()
        self._closing = False
        self._last_batch_jobs = 1
        self._worker = threading.Thread(target=self._loop, name="logllm-batcher", daemon=True)
        self._worker.start()

    @property
    def queued_sequences(self) -> int:
        return self._queued_sequences

    def submit(self, sequences: Sequence[Sequence[str]], deadline: float) -> Future:
        """Queue a job; its future resolves to one result per sequence, in order."""
        job = _Job(sequences, deadline)
        with self._cond:
            if self._closing:
                raise BatcherClosed("the server is shutting down")
            if self._queued_sequences + len(sequences) > self.max_queue_sequences:
                raise QueueFull(f"queue holds {self._queued_sequences} of {self.max_queue_sequences} sequences")
            self._jobs.append(job)
            self._queued_sequences += len(sequences)
            self._observer.queue_changed(self._queued_sequences)
            self._cond.notify()
        return job.future

    def close(self, timeout_s: Optional[float] = None) -> None:
        """Refuse new jobs, finish the queued ones, stop the worker."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._worker.join(timeout_s)

    # -- worker ----------------------------------------------------------------------------------
    def _take_batch(self) -> list[_Job]:
        with self._cond:
            while not self._jobs:
                if self._closing:
                    return []
                self._cond.wait()
            lone = len(self._jobs) == 1 and self._last_batch_jobs <= 1
            close_at = self._jobs[0].arrived + (0.0 if lone else self.max_wait_s)
            while True:
                batch_size, taken = 0, 0
                for job in self._jobs:  # how many whole jobs fit (the first always does)
                    if taken and batch_size + len(job.sequences) > self.max_batch_sequences:
                        break
                    batch_size += len(job.sequences)
                    taken += 1
                full = batch_size >= self.max_batch_sequences or taken < len(self._jobs)
                remaining = close_at - time.monotonic()
                if full or remaining <= 0 or self._closing:
                    break
                self._cond.wait(remaining)
            batch = [self._jobs.popleft() for _ in range(taken)]
            self._last_batch_jobs = taken
            self._queued_sequences -= batch_size
            self._observer.queue_changed(self._queued_sequences)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                return
            now = time.monotonic()
            live = []
            for job in batch:
                if job.future.cancelled() or not job.future.set_running_or_notify_cancel():
                    continue
                if job.deadline <= now:
                    self._observer.job_expired()
                    job.future.set_exception(DeadlineExpired("deadline passed while queued"))
                    continue
                live.append(job)
            if live:
                self._run(live)

    def _run(self, jobs: list[_Job]) -> None:
        flat = [seq for job in jobs for seq in job.sequences]
        started = time.monotonic()
        try:
            results = self._run_batch(flat)
        except Exception as exc:  # one bad batch must not kill the worker; every caller hears why
            logger.exception("batch of %d sequences failed", len(flat))
            for job in jobs:
                job.future.set_exception(exc)
            return
        self._observer.batch_ran(len(flat), time.monotonic() - started)
        offset = 0
        for job in jobs:
            job.future.set_result(results[offset : offset + len(job.sequences)])
            offset += len(job.sequences)
