"""`logllm-plugin bench server`: a real `serve` process, measured from real gRPC clients.

For each batching mode (on: the server's defaults; off: one model call per request, the
baseline) a fresh server process starts on port 0; for each concurrency level C, C client
threads (one channel each) send single-sequence Detect requests until `requests_per_level` are
answered. Reported: sequences/s, p50/p99 latency, the on/off throughput ratio per level, and the
server's peak RSS (VmHWM from /proc).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

def peak_rss_mib(pid: int) -> Optional[float]:
    """Peak resident memory (VmHWM) of a live process, in MiB; None when it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


BATCHING_OFF = (1, 0.0)  # --max-batch, --max-wait-ms: one model call per request (the baseline)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "examples" / "requests.jsonl"


class _ServerProcess:
    def __init__(self, args: list[str], timeout_s: float = 300):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "logllm_plugin", "serve", "--port", "0", *args],
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.port: Optional[int] = None
        deadline = time.monotonic() + timeout_s
        for line in self.proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "listening":
                self.port = entry["grpc_port"]
            if entry.get("msg") == "serving":
                break
            if time.monotonic() > deadline:
                break
        if self.port is None or self.proc.poll() is not None:
            self.proc.kill()
            raise RuntimeError("the server did not start; run `logllm-plugin serve` by hand to see why")
        threading.Thread(target=self.proc.stderr.read, daemon=True).start()  # keep the pipe drained

    def peak_rss_mib(self) -> Optional[float]:
        return peak_rss_mib(self.proc.pid)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _drive(target: str, sequences: list[list[str]], concurrency: int, total: int) -> dict:
    from logllm_plugin.client import InferenceClient

    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))
    errors: list[str] = []

    def worker(k: int) -> None:
        with InferenceClient(target, timeout_s=60) as client:
            client.detect([sequences[k % len(sequences)]])  # connect and warm this channel
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                started = time.perf_counter()
                try:
                    client.detect([sequences[n % len(sequences)]])
                except Exception as exc:  # counted and reported, not fatal for the whole run
                    errors.append(type(exc).__name__)
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = np.array(latencies) * 1000.0
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": len(errors),
        "sequences_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
    }


def run_server_bench(*, model_dir: Optional[str], data_path: Optional[str], requests_per_level: int,
                     concurrency_levels: list[int], max_batch: int = 64, max_wait_ms: float = 5.0,
                     threads: Optional[int] = None, progress: Callable[[str], None] = lambda m: None) -> dict:
    from logllm_plugin.inputs import load_sequences

    modes = {"on": (max_batch, max_wait_ms), "off": BATCHING_OFF}
    path = data_path or str(DEFAULT_DATA)
    sequences = [s.lines for s in load_sequences(path)[0]]
    runs, rss = [], {}
    for mode, (batch, wait) in modes.items():
        # The bench sends the same few sequences again and again: with the verdict cache on, the
        # model would answer each once and the rest would measure a dict lookup.
        args = ["--max-batch", str(batch), "--max-wait-ms", str(wait), "--max-queue", "100000", "--verdict-cache", "0"]
        if model_dir:
            args += ["--model", model_dir]
        if threads:
            args += ["--threads", str(threads)]
        server = _ServerProcess(args)
        try:
            for level in concurrency_levels:
                row = _drive(f"127.0.0.1:{server.port}", sequences, level, requests_per_level)
                row["batching"] = mode
                runs.append(row)
                progress(f"batching {mode}, concurrency {level}: {row['sequences_per_s']} seq/s, "
                         f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms")
            rss[mode] = server.peak_rss_mib()
        finally:
            server.stop()
    by = {(r["batching"], r["concurrency"]): r for r in runs}
    speedup = {str(c): round(by[("on", c)]["sequences_per_s"] / max(by[("off", c)]["sequences_per_s"], 1e-9), 2)
               for c in concurrency_levels}
    return {
        "benchmark": "server",
        "data": path,
        "sequences": len(sequences),
        "mean_lines_per_sequence": round(float(np.mean([len(s) for s in sequences])), 1),
        "requests_per_level": requests_per_level,
        "batching_modes": {m: {"max_batch": b, "max_wait_ms": w} for m, (b, w) in modes.items()},
        "baseline": "batching off (one model call per request), same model, same machine, same run",
        "runs": runs,
        "batching_speedup": speedup,
        "server_peak_rss_mib": max((v for v in rss.values() if v is not None), default=None),
        "server_peak_rss_mib_by_mode": rss,
        "cpu_count": os.cpu_count(),
        "server_threads": threads,
        "verdict_cache": "off: every request goes through the model",
    }
