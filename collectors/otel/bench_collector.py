"""`logllm-plugin bench collector`: records/s through the real collector with the logllm processor,
beside the same collector without it and beside the OTLP bridge, same run, same input.

A sender here exports `records` log records (requests of `batch` records over `keys` services) to
the system under test, which forwards over OTLP/gRPC to a receiver here; the clock stops when the
receiver holds every record. Runs, in order:

* `collector_plain`: otelcol-logllm, `processors: [batch]` (the baseline);
* `collector_logllm`: the same collector, `processors: [memory_limiter, logllm, batch]`;
* `bridge`: the OTLP bridge (in this process, spool in a temp dir) forwarding to the receiver.

The processor and the bridge score on the same `logllm-plugin serve` subprocess (verdict cache
off, so recurring sequences are scored every time).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from typing import Optional

from collectors.otel.bench import _Downstream, _drive, _requests
from collectors.otel.collector_process import CollectorProcess, build_collector, free_port
from logllm_plugin.sequencer import SequencerConfig


def _collector_config(otlp_port: int, out_port: int, health_port: int, processors: list[str], server: str,
                      idle_s: float) -> str:
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{otlp_port}}}
processors:
  memory_limiter: {{check_interval: 1s, limit_mib: 2000, spike_limit_mib: 400}}
  logllm: {{endpoint: "{server}", idle_timeout: {int(idle_s * 1000)}ms, timeout: 10s, latency_budget: 30s}}
  batch: {{timeout: 200ms, send_batch_size: 512}}
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:{out_port}
    tls: {{insecure: true}}
    sending_queue: {{enabled: true, num_consumers: 4}}
extensions:
  health_check: {{endpoint: 127.0.0.1:{health_port}}}
service:
  extensions: [health_check]
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    logs: {{receivers: [otlp], processors: [{", ".join(processors)}], exporters: [otlp_grpc]}}
"""


class _Serve:
    def __init__(self, model_dir: Optional[str], threads: Optional[int]):
        self.port = free_port()
        args = [sys.executable, "-m", "logllm_plugin", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--verdict-cache", "0"]
        if model_dir:
            args += ["--model", model_dir]
        if threads:
            args += ["--threads", str(threads)]
        self._serving = threading.Event()
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        threading.Thread(target=self._read, daemon=True).start()
        if not self._serving.wait(180):
            self.stop()
            raise RuntimeError("logllm-plugin serve did not become ready within 180 s")

    def _read(self):
        for line in self.proc.stderr:
            try:
                if json.loads(line).get("msg") == "serving":
                    self._serving.set()
            except ValueError:
                continue

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _through_collector(binary, requests, records: int, processors: list[str], server: str, idle_s: float) -> float:
    downstream = _Downstream()
    otlp_port, health_port = free_port(), free_port()
    config = _collector_config(otlp_port, downstream.port, health_port, processors, server, idle_s)
    try:
        with CollectorProcess(config, binary, health_port=health_port):
            return _drive(otlp_port, requests, downstream, records, 600)
    finally:
        downstream.server.stop(0)


def run_collector_bench(*, lines: list[str], records: int = 20_000, batch: int = 500, keys: int = 20,
                        model_dir: Optional[str] = None, threads: Optional[int] = None, idle_s: float = 0.2,
                        with_bridge: bool = True) -> dict:
    from collectors.otel.bridge import OtlpBridge
    from collectors.scoring import remote_scorer

    binary = build_collector()
    loadavg = open("/proc/loadavg").read().strip() if os.path.exists("/proc/loadavg") else None
    requests = _requests(lines, records, batch, keys)
    serve = _Serve(model_dir, threads)
    target = f"127.0.0.1:{serve.port}"
    try:
        # Warm the server (model, template cache) off the clock on the lines the runs will send.
        warm = remote_scorer(target)
        distinct = list(dict.fromkeys(lines))
        for start in range(0, len(distinct), 15):
            warm([distinct[start:start + 15]], 60.0)
        warm.close()
        plain_s = _through_collector(binary, requests, records, ["batch"], target, idle_s)
        logllm_s = _through_collector(binary, requests, records, ["memory_limiter", "logllm", "batch"], target,
                                      idle_s)
        bridge_s = None
        if with_bridge:
            downstream = _Downstream()
            scorer = remote_scorer(target)
            with tempfile.TemporaryDirectory() as spool:
                bridge = OtlpBridge(listen="127.0.0.1:0", forward=f"127.0.0.1:{downstream.port}", scorer=scorer,
                                    spool_dir=spool, sequencer=SequencerConfig(idle_s=idle_s))
                bridge.start()
                try:
                    bridge_s = _drive(bridge.port, requests, downstream, records, 600)
                finally:
                    bridge.stop()
                    scorer.close()
                    downstream.server.stop(0)
    finally:
        serve.stop()
    plain_rate, logllm_rate = records / plain_s, records / logllm_s
    result = {
        "benchmark": "collector",
        "records": records, "records_per_request": batch, "keys": keys, "idle_timeout_s": idle_s,
        "collector_plain_records_per_s": round(plain_rate, 1),
        "collector_logllm_records_per_s": round(logllm_rate, 1),
        "logllm_to_plain_ratio": round(logllm_rate / plain_rate, 3),
        "baseline": "the same collector binary with processors [batch] only, same run, same data",
        "server": "logllm-plugin serve subprocess, --verdict-cache 0" + (f", --threads {threads}" if threads else ""),
        "note": "time includes the last idle flush (idle_timeout) and scoring on the server",
        "loadavg_at_start": loadavg,
    }
    if bridge_s is not None:
        bridge_rate = records / bridge_s
        result["bridge_records_per_s"] = round(bridge_rate, 1)
        result["logllm_to_bridge_ratio"] = round(logllm_rate / bridge_rate, 3)
    return result
