"""`logllm-plugin bench learn --under-retrain`: what a retrain costs the traffic it runs beside.

One `serve --learn` process; once its first model serves:
1. baseline: a fixed number of sequences scored over HTTP (batches of 64, verdict cache off),
   sequences/s;
2. one more batch makes the scheduled retrain due (`learning.min_new_sequences` is set to just
   above the baseline's traffic, `--retrain-every 1s`), and scoring goes on while the retrain runs:
   sequences/s during it, as a ratio to the baseline of the same run and process.
With `--full-history`, the history directory is first filled to `learning.history_max_bytes` (the
data's normal sequences, repeated), so the server's peak RSS is that of a learner with a full history.
"""
from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from logllm_plugin.benchmarks.learning import BATCH, LearningServer, split_parts


def fill_history(directory: Path, sequences: list[list[str]], max_bytes: int) -> dict:
    """Write `sequences` over and over into a learner's history until it holds about `max_bytes`."""
    from logllm_plugin.learning.history import SequenceHistory

    history = SequenceHistory(directory, max_bytes)
    started = time.monotonic()
    chunk = [list(s) for s in sequences]
    while history.bytes_held < max_bytes * 0.98:
        history.append(chunk)
    history.close()
    held = sum(p.stat().st_size for p in directory.glob("*/seg-*.jsonl"))
    return {"history_bytes": held, "history_sequences": history.count, "fill_s": round(time.monotonic() - started, 1)}


def children_rss_mib(pid: int) -> float:
    """Resident memory of a process's children now (the trainer subprocess), in MiB."""
    total = 0
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            kids = children.read_text().split()
        except OSError:
            continue
        for kid in kids:
            try:
                for line in Path(f"/proc/{kid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
    return round(total / 1024, 1)


def _rate(server: LearningServer, batches, until: Callable[[], bool]) -> dict:
    scored, started, trainer_rss = 0, time.monotonic(), 0.0
    for batch in batches:
        server.detect(batch)
        scored += len(batch)
        trainer_rss = max(trainer_rss, children_rss_mib(server.proc.pid))
        if until():
            break
    seconds = time.monotonic() - started
    return {"sequences": scored, "seconds": round(seconds, 2), "sequences_per_s": round(scored / seconds, 1),
            "trainer_peak_rss_mib": trainer_rss}


def run_retrain_load_bench(data_path: str, *, train_fraction: float = 0.7, threads: Optional[int] = 1,
                           baseline_sequences: int = 8192, full_history: bool = False, timeout_s: float = 1800,
                           progress: Callable[[str], None] = lambda m: None) -> dict:
    from logllm_plugin.config import load_config
    from logllm_plugin.inputs import load_input

    sequences, _ = load_input(data_path)
    train, test, protocol = split_parts(sequences, train_fraction)
    history = [s.lines for s in train if s.label == 0]
    traffic = [s.lines for s in test if s.label == 0] or history
    cycle = itertools.cycle(traffic)
    batches = ([next(cycle) for _ in range(BATCH)] for _ in itertools.count())
    baseline_batches = -(-baseline_sequences // BATCH)
    env = {"LOGLLM_LEARNING__MIN_NEW_SEQUENCES": str(baseline_batches * BATCH + 1), "LOGLLM_LEARNING__POLL_S": "0.5"}
    result = {"data": data_path, "split": protocol, "threads": threads, "history": len(history)}
    with tempfile.TemporaryDirectory(prefix="logllm-retrain-load-") as tmp:
        directory = Path(tmp) / "learn"
        min_sequences: Optional[int] = len(history)
        if full_history:
            cap = load_config(environ={}).learning.history_max_bytes
            progress(f"filling the history to {cap / 2**20:.0f} MiB")
            result["full_history"] = fill_history(directory / "history", history, cap)
            min_sequences = None  # the history is already past learning.min_sequences
        # Verdict cache off: the traffic repeats the test part, and cached answers would measure the cache.
        server = LearningServer(directory, min_sequences, threads, ["--retrain-every", "1s", "--verdict-cache", "0"],
                                log_path=Path(tmp) / "serve.log", env=env)
        try:
            if not full_history:
                server.detect(history)
            started = time.monotonic()
            first = server.wait_for(lambda m: m["state"] == "serving" and not m["training"], timeout_s)
            result["learning_to_serving_s"] = round(time.monotonic() - started, 1)
            result["first_model"] = first["version"]
            progress(f"serving {first['version']}; baseline: {baseline_batches * BATCH} sequences")
            result["baseline"] = _rate(server, itertools.islice(batches, baseline_batches), lambda: False)
            trainings = first["trainings"]
            server.detect(next(batches))  # the retrain falls due
            server.wait_for(lambda m: m["training"] or m["trainings"] > trainings, 120)
            progress("retrain running; scoring beside it")
            result["during_retrain"] = _rate(server, batches, lambda: not server.model()["training"])
            state = server.wait_for(lambda m: not m["training"], timeout_s)
            result["retrain"] = state.get("last_training")
            result["server_peak_rss_mib"] = server.peak_rss_mib()
        finally:
            server.stop()
    base = result["baseline"]["sequences_per_s"]
    result["ratio_during_retrain"] = round(result["during_retrain"]["sequences_per_s"] / base, 3) if base else None
    return result
