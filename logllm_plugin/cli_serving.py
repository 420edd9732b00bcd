"""`logllm-plugin serve` and `logllm-plugin bench ...` (registered on the main group in cli.py)."""
from __future__ import annotations

import json
import logging
import sys
from typing import Optional

import click

from logllm_plugin.cli import _config, _run, main


def use_json_logs(level: int = logging.INFO) -> None:
    from logllm_plugin.logfmt import JsonFormatter

    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(JsonFormatter())
    for name in ("logllm_plugin", "collectors"):  # our long-running processes report at INFO
        logging.getLogger(name).setLevel(min(level, root.level or level))


@main.command("serve")
@click.option("--model", "model_dir", help="Model directory (default: the embedded model).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config; its `server:` section.")
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 for all interfaces).")
@click.option("--port", type=int, help="gRPC port (default 50051; 0 picks a free one, logged at start).")
@click.option("--http-port", type=int, help="Also serve HTTP/JSON (POST /v1/detect, /metrics) on this port.")
@click.option("--token-file", type=click.Path(dir_okay=False), help="File holding the bearer token callers must send.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM server certificate (chain).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--tls-client-ca", type=click.Path(dir_okay=False), help="Require client certificates signed by this CA.")
@click.option("--max-batch", type=int, help="Dynamic batching: most sequences per model call (default 64).")
@click.option("--max-wait-ms", type=float, help="Dynamic batching: longest wait to fill a batch (default 5).")
@click.option("--max-queue", type=int, help="Sequences queued before RESOURCE_EXHAUSTED (default 4096).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where the model runs (default auto).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), help="Head precision.")
@click.option("--grace-s", type=float, help="On SIGTERM: time in-flight requests get to finish (default 30).")
@click.option("--verdict-cache", "verdict_cache_size", type=click.IntRange(0),
              help="Sequences (by masked lines) answered again without the model (default 50000; 0: off).")
@click.option("--threads", type=click.IntRange(1, 256), help="torch threads for the model (default: all cores).")
@click.option("--llm", "llm_dir", help="Analyze with this local Qwen model directory (default: the knowledge base).")
@click.option("--adapter", "adapter_dir", help="peft adapter for --llm.")
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True)
def serve_cmd(model_dir, config_path, host, port, http_port, token_file, tls_cert, tls_key, tls_client_ca,
              max_batch, max_wait_ms, max_queue, device, dtype, grace_s, verdict_cache_size, threads, llm_dir,
              adapter_dir, log_format):
    """Serve the detector over gRPC (logllm.v1.Inference, health, reflection) and optionally HTTP."""
    def work():
        from logllm_plugin.analyzers.service import build_analysis_service
        from logllm_plugin.cli_analysis import analysis_overrides
        from logllm_plugin.detector import load_detector
        from logllm_plugin.serving.server import InferenceServer

        overrides = {"server": {
            "host": host, "port": port, "http_port": http_port, "token_file": token_file, "tls_cert": tls_cert,
            "tls_key": tls_key, "tls_client_ca": tls_client_ca, "max_batch_sequences": max_batch,
            "max_wait_ms": max_wait_ms, "max_queue_sequences": max_queue, "device": device, "dtype": dtype,
            "grace_s": grace_s, "verdict_cache_size": verdict_cache_size, "threads": threads},
            **analysis_overrides(llm_dir, adapter_dir)}
        plugin_config = _config(config_path, overrides)
        config = plugin_config.server
        if log_format == "json":
            use_json_logs()
        else:
            logging.getLogger("logllm_plugin").setLevel(logging.INFO)
        server = InferenceServer(
            config, lambda: load_detector(model_dir, device=config.device),
            analysis_factory=lambda detector: build_analysis_service(plugin_config.analysis, signature=detector.store_ids,
                                                                      encoder=detector.encoder),
        ).start()
        server.serve_until_signal()

    _run(work)


@main.group("bench")
def bench() -> None:
    """Benchmarks with JSON output and a baseline measured in the same run."""


@bench.command("server")
@click.option("--model", "model_dir", help="Model directory (default: the embedded model).")
@click.option("--data", "data_path", help="Sequences to send (default: the bundled sample).")
@click.option("--requests", "requests_per_level", type=int, default=400, show_default=True,
              help="Requests per concurrency level and batching mode.")
@click.option("--concurrency", default="1,8,32", show_default=True, help="Comma-separated client counts.")
@click.option("--max-batch", type=int, default=64, show_default=True, help="Batching on: --max-batch of the server.")
@click.option("--max-wait-ms", type=float, default=5.0, show_default=True, help="Batching on: --max-wait-ms of the server.")
@click.option("--threads", type=click.IntRange(1, 256), help="--threads of the server (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_server_cmd(model_dir: Optional[str], data_path: Optional[str], requests_per_level: int, concurrency: str,
                     max_batch: int, max_wait_ms: float, threads: Optional[int], as_json: bool):
    """Sequences/s and p50/p99 latency of a real server, dynamic batching on vs off, and peak RSS."""
    def work():
        from logllm_plugin.benchmarks.server import run_server_bench

        levels = [int(x) for x in concurrency.split(",") if x.strip()]
        result = run_server_bench(model_dir=model_dir, data_path=data_path, requests_per_level=requests_per_level,
                                  concurrency_levels=levels, max_batch=max_batch, max_wait_ms=max_wait_ms,
                                  threads=threads, progress=lambda m: click.echo(m, err=True))
        if not as_json:
            for row in result["runs"]:
                click.echo(f"batching {row['batching']:<3} concurrency {row['concurrency']:>3}: "
                           f"{row['sequences_per_s']:8.1f} seq/s  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms")
            for level, ratio in result["batching_speedup"].items():
                click.echo(f"batching on/off throughput ratio at concurrency {level}: {ratio:.2f}")
            click.echo(f"server peak RSS: {result['server_peak_rss_mib']} MiB")
        click.echo(json.dumps(result) if as_json else "", file=sys.stdout)

    _run(work)


@bench.command("pipeline")
@click.option("--model", "model_dir", help="Model directory (default: the embedded model).")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Logs to push through: sequence JSONL/JSON, record JSONL or text (format sniffed).")
@click.option("--key-regex", help="Text logs: the sequence key in each line (e.g. 'blk_-?\\d+').")
@click.option("--repeat", type=click.IntRange(1, 50), default=3, show_default=True, help="Warm passes (median reported).")
@click.option("--batch", type=click.IntRange(1, 100_000), default=512, show_default=True,
              help="Sequences per model call, as the bridge batches them.")
@click.option("--threads", type=click.IntRange(1, 256), help="torch intra-op threads (default: torch's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_pipeline_cmd(model_dir, data_path, key_regex, repeat, batch, threads, as_json):
    """Lines/s read → sequence → template → embed → score, warm and cold, beside Drain3 alone."""
    def work():
        import torch

        from logllm_plugin.benchmarks.pipeline import run_pipeline_bench

        if threads:
            torch.set_num_threads(threads)  # the bench calls the model from this thread
        read_kwargs = {"key_regex": key_regex} if key_regex else {}
        result = run_pipeline_bench(model_dir=model_dir, data_path=data_path, repeat=repeat, batch=batch,
                                    read_kwargs=read_kwargs, progress=lambda m: click.echo(m, err=True))
        if not as_json:
            click.echo(f"{result['lines']:,} lines, {result['sequences']:,} sequences "
                       f"({result['anomalous_sequences']:,} anomalous) on {result['cpu_count']} CPUs")
            click.echo(f"pipeline warm: {result['lines_per_s']:,} lines/s   cold: {result['cold_lines_per_s']:,} lines/s")
            click.echo(f"Drain3 alone:  {result['baseline_lines_per_s']:,} lines/s   "
                       f"ratio {result['ratio_to_baseline']}")
            click.echo(f"one sequence alone: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
                       f"peak RSS {result['peak_rss_mb']} MB")
        click.echo(json.dumps(result) if as_json else "")

    _run(work)


@bench.command("annotate")
@click.option("--url", required=True, help="Elasticsearch or OpenSearch URL (e.g. from scripts/local-stack up).")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Logs to index and annotate (sequence JSONL or anything detect reads).")
@click.option("--model", "model_dir", help="Model directory (default: the embedded model).")
@click.option("--threads", type=click.IntRange(1, 256), help="torch threads (1 is faster beside a local cluster).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_annotate_cmd(url, data_path, model_dir, threads, as_json):
    """Documents/s annotated in a real cluster beside the annotator with no model, same run."""
    def work():
        from collectors.elastic.bench import run_annotate_bench

        result = run_annotate_bench(url=url, data_path=data_path, model_dir=model_dir, threads=threads,
                                    progress=lambda m: click.echo(m, err=True))
        if not as_json:
            click.echo(f"{result['docs']:,} documents, {result['sequences']:,} sequences "
                       f"({result['anomalous_sequences']:,} anomalous) on {result['backend']}")
            click.echo(f"annotate: {result['docs_per_s']:,} docs/s; without the model: "
                       f"{result['baseline_docs_per_s']:,} docs/s (ratio {result['ratio_to_baseline']})")
        click.echo(json.dumps(result) if as_json else "")

    _run(work)


@bench.command("bridge")
@click.option("--model", "model_dir", help="Model scoring inside the bridge (default: the embedded model).")
@click.option("--data", "data_path", help="Log lines to send (default: the bundled sample's lines).")
@click.option("--records", type=int, default=20_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_bridge_cmd(model_dir, data_path, records, as_json):
    """Records/s through the OTLP bridge beside a plain OTLP forward measured in the same run."""
    def work():
        from collectors.otel.bench import run_bridge_bench
        from logllm_plugin.benchmarks.server import DEFAULT_DATA
        from logllm_plugin.inputs import load_sequences

        lines = [line for s in load_sequences(data_path or str(DEFAULT_DATA))[0] for line in s.lines]
        result = run_bridge_bench(lines=lines, records=records, model_dir=model_dir)
        if not as_json:
            click.echo(f"plain forward: {result['plain_forward_records_per_s']:.0f} records/s; "
                       f"bridge: {result['bridge_records_per_s']:.0f} records/s "
                       f"(ratio {result['bridge_to_plain_ratio']})")
        click.echo(json.dumps(result) if as_json else "")

    _run(work)
