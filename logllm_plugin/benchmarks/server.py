"""`logllm-plugin bench server`: a real `serve` process, measured from real gRPC clients.

For each batching mode (on: the server's defaults; off: one model call per request, the
baseline) a fresh server process starts on port 0; for each concurrency level C, a client keeps C
single-sequence Detect requests in flight (the data's sequences round-robin) until
`requests_per_level` are answered. Reported: sequences/s, p50/p99 latency, the on/off throughput
ratio per level, the server's peak RSS (VmHWM from /proc), and the CPU the client and the server
used (share of the machine's cores over the level's wall time), so a client that competes with
the server for the same cores shows.

Clients (`client`): `ghz` (the Go gRPC load tester, when found on PATH or under
~/.cache/logllm-ci/gobin; `go install github.com/bojand/ghz/cmd/ghz@v0.121.0`), `process` (C
threads with one channel each, in a separate Python process), `threads` (the same threads inside
the bench process: the old client); `auto` = ghz if found, else process.
"""
from __future__ import annotations

import json
import os
import resource
import shutil
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


PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"
CLIENTS = ("auto", "ghz", "process", "threads")


def find_ghz() -> Optional[str]:
    found = shutil.which("ghz")
    cached = Path.home() / ".cache" / "logllm-ci" / "gobin" / "ghz"
    return found or (str(cached) if cached.is_file() and os.access(cached, os.X_OK) else None)


def _process_cpu_s(pid: int) -> Optional[float]:
    """User + system CPU seconds of a live process (from /proc/PID/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _drive_ghz(ghz: str, target: str, sequences: list[list[str]], concurrency: int, total: int) -> dict:
    """One level with ghz: the data's sequences round-robin (ghz cycles a JSON array), one per request."""
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as data:
        json.dump([{"sequences": [{"lines": lines}]} for lines in sequences], data)
    try:
        done = subprocess.run(
            [ghz, "--insecure", "--proto", str(PROTO_DIR / "logllm" / "v1" / "inference.proto"),
             "--import-paths", str(PROTO_DIR), "--call", "logllm.v1.Inference.Detect", "-D", data.name,
             "-c", str(concurrency), "-n", str(total), "--connections", str(min(concurrency, 8)),
             "--format", "json", "--timeout", "60s", target],
            capture_output=True, text=True, timeout=900)
    finally:
        os.unlink(data.name)
    if done.returncode != 0 and not done.stdout.strip():
        raise RuntimeError(f"ghz failed: {done.stderr.strip()[:500]}")
    report = json.loads(done.stdout)
    percentiles = {int(round(d["percentage"])): d["latency"] / 1e6 for d in report.get("latencyDistribution") or []}
    ok = (report.get("statusCodeDistribution") or {}).get("OK", 0)
    return {
        "concurrency": concurrency,
        "requests": ok,
        "errors": int(report.get("count", 0)) - ok,
        "sequences_per_s": round(ok / (report["total"] / 1e9), 1) if report.get("total") else None,
        "p50_ms": round(percentiles[50], 2) if 50 in percentiles else None,
        "p99_ms": round(percentiles[99], 2) if 99 in percentiles else None,
    }


def _drive_process(target: str, data_path: str, concurrency: int, total: int) -> dict:
    """One level from a separate Python process (the threaded client, off the bench's interpreter)."""
    done = subprocess.run([sys.executable, "-m", "logllm_plugin.benchmarks.server", "--drive", target, data_path,
                           str(concurrency), str(total)], capture_output=True, text=True, timeout=900,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    if done.returncode != 0:
        raise RuntimeError(f"client process failed: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_server_bench(*, model_dir: Optional[str], data_path: Optional[str], requests_per_level: int,
                     concurrency_levels: list[int], max_batch: int = 64, max_wait_ms: float = 5.0,
                     threads: Optional[int] = None, client: str = "auto",
                     progress: Callable[[str], None] = lambda m: None) -> dict:
    from logllm_plugin.inputs import load_input

    if client not in CLIENTS:
        raise ValueError(f"client must be one of {', '.join(CLIENTS)}, not {client!r}")
    ghz = find_ghz() if client in ("auto", "ghz") else None
    if client == "ghz" and ghz is None:
        raise RuntimeError("--client ghz: ghz not found on PATH or in ~/.cache/logllm-ci/gobin "
                           "(go install github.com/bojand/ghz/cmd/ghz@v0.121.0)")
    client = "ghz" if ghz else ("process" if client == "auto" else client)
    modes = {"on": (max_batch, max_wait_ms), "off": BATCHING_OFF}
    path = data_path or str(DEFAULT_DATA)
    sequences = [s.lines for s in load_input(path)[0]]
    cores = _cpu_count()
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
                target = f"127.0.0.1:{server.port}"
                server_cpu, client_cpu, self_cpu = _process_cpu_s(server.proc.pid), _children_cpu_s(), time.process_time()
                started = time.perf_counter()
                if client == "ghz":
                    row = _drive_ghz(ghz, target, sequences, level, requests_per_level)
                elif client == "process":
                    row = _drive_process(target, path, level, requests_per_level)
                else:
                    row = _drive(target, sequences, level, requests_per_level)
                wall = time.perf_counter() - started
                used_by_client = (time.process_time() - self_cpu if client == "threads"
                                  else _children_cpu_s() - client_cpu)
                server_after = _process_cpu_s(server.proc.pid)
                row["client_cpu_share"] = round(used_by_client / (wall * cores), 3)
                row["server_cpu_share"] = (round((server_after - server_cpu) / (wall * cores), 3)
                                           if server_cpu is not None and server_after is not None else None)
                row["batching"] = mode
                runs.append(row)
                progress(f"batching {mode}, concurrency {level}: {row['sequences_per_s']} seq/s, "
                         f"p50 {row['p50_ms']} ms, p99 {row['p99_ms']} ms, CPU client {row['client_cpu_share']} server {row['server_cpu_share']}")
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
        "client": client,
        "client_cpu_share": "share of all cores the client used over each level's wall time; server_cpu_share likewise",
        "cpu_count": cores,
        "server_threads": threads,
        "verdict_cache": "off: every request goes through the model",
    }


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--drive":
    # The `process` client: python -m logllm_plugin.benchmarks.server --drive TARGET DATA CONCURRENCY TOTAL
    from logllm_plugin.inputs import load_input

    _target, _data, _level, _total = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    print(json.dumps(_drive(_target, [s.lines for s in load_input(_data)[0]], _level, _total)))
