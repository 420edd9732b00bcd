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


class Duration(click.ParamType):
    """`90`, `90s`, `15m`, `6h`, `1d` → seconds."""

    name = "duration"
    UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip().lower()
        unit = text[-1:] if text[-1:] in self.UNITS else "s"
        number = text[:-1] if text[-1:] in self.UNITS else text
        try:
            seconds = float(number) * self.UNITS[unit]
        except ValueError:
            self.fail(f"{value!r} is not a duration (e.g. 90s, 15m, 6h, 1d)", param, ctx)
        if seconds < 0:
            self.fail(f"{value!r} is negative", param, ctx)
        return seconds


@main.command("serve")
@click.option("--model", "model_dir", help="Model directory (default: the embedded model).")
@click.option("--learn", "learn_dir", type=click.Path(file_okay=False),
              help="Learning mode: keep a history here, train models of this traffic's normal, publish them here.")
@click.option("--follow", "follow_dir", type=click.Path(file_okay=False),
              help="Serve the versions a learner publishes in this directory (another replica's --learn DIR).")
@click.option("--learn-min-sequences", type=click.IntRange(1),
              help="Learning mode: sequences received before the first model trains (default 2000).")
@click.option("--retrain-every", type=Duration(),
              help="Learning mode: retrain over the recent history this often (e.g. 6h; 0: never; default 6h).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config; its `server:` section.")
@click.option("--host", help="Address to bind (default 127.0.0.1; 0.0.0.0 for all interfaces).")
@click.option("--port", type=click.IntRange(0, 65535), help="gRPC port (default 50051; 0 picks a free one, logged at start).")
@click.option("--http-port", type=click.IntRange(0, 65535), help="Also serve HTTP/JSON (POST /v1/detect, /metrics) on this port.")
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Prometheus /metrics on this port without the token (on --http-port it needs the token).")
@click.option("--token-file", type=click.Path(dir_okay=False), help="File holding the bearer token callers must send.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM server certificate (chain).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--tls-client-ca", type=click.Path(dir_okay=False), help="Require client certificates signed by this CA.")
@click.option("--max-batch", type=click.IntRange(1), help="Dynamic batching: most sequences per model call (default 64).")
@click.option("--max-wait-ms", type=click.FloatRange(0), help="Dynamic batching: longest wait to fill a batch (default 5).")
@click.option("--max-queue", type=click.IntRange(1), help="Sequences queued before RESOURCE_EXHAUSTED (default 4096).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="Where the model runs (default auto).")
@click.option("--dtype", type=click.Choice(["auto", "float32", "float16", "bfloat16"]), help="Head precision.")
@click.option("--grace-s", type=click.FloatRange(0), help="On SIGTERM: time in-flight requests get to finish (default 30).")
@click.option("--verdict-cache", "verdict_cache_size", type=click.IntRange(0),
              help="Sequences (by masked lines) answered again without the model (default 50000; 0: off).")
@click.option("--threads", type=click.IntRange(1, 256), help="torch threads for the model (default: all cores).")
@click.option("--llm", "llm_dir", help="Analyze with this local Qwen model directory (default: the knowledge base).")
@click.option("--adapter", "adapter_dir", help="peft adapter for --llm.")
@click.option("--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True)
def serve_cmd(model_dir, learn_dir, follow_dir, learn_min_sequences, retrain_every, config_path, host, port,
              http_port, metrics_port, token_file, tls_cert, tls_key, tls_client_ca, max_batch, max_wait_ms,
              max_queue, device, dtype, grace_s, verdict_cache_size, threads, llm_dir, adapter_dir, log_format):
    """Serve the detector over gRPC (logllm.v1.Inference, health, reflection) and optionally HTTP.

    With --learn DIR no model is needed: verdicts are `unscored` (status `learning`) until enough
    traffic has been seen, then a model of this traffic's normal serves, retrained on a schedule.
    """
    if learn_dir and follow_dir:
        raise click.UsageError("--learn and --follow are exclusive: one learner, any number of followers")
    if follow_dir and model_dir:
        raise click.UsageError("--follow serves the learner's versions; it takes no --model")
    if (learn_min_sequences is not None or retrain_every is not None) and not learn_dir:
        raise click.UsageError("--learn-min-sequences and --retrain-every need --learn DIR")

    def work():
        from logllm_plugin.analyzers.service import build_analysis_service
        from logllm_plugin.cli_analysis import analysis_overrides
        from logllm_plugin.serving.server import InferenceServer

        overrides = {"server": {
            "host": host, "port": port, "http_port": http_port, "metrics_port": metrics_port, "token_file": token_file, "tls_cert": tls_cert,
            "tls_key": tls_key, "tls_client_ca": tls_client_ca, "max_batch_sequences": max_batch,
            "max_wait_ms": max_wait_ms, "max_queue_sequences": max_queue, "device": device, "dtype": dtype,
            "grace_s": grace_s, "verdict_cache_size": verdict_cache_size, "threads": threads},
            **analysis_overrides(llm_dir, adapter_dir),
            "learning": {"min_sequences": learn_min_sequences, "retrain_every_s": retrain_every}}
        plugin_config = _config(config_path, overrides)
        config = plugin_config.server
        if log_format == "json":
            use_json_logs()
        else:
            logging.getLogger("logllm_plugin").setLevel(logging.INFO)
        server = InferenceServer(
            config, detector_loader(plugin_config, model_dir, learn_dir, follow_dir),
            analysis_factory=lambda detector: build_analysis_service(plugin_config.analysis, signature=detector.store_ids,
                                                                      encoder=detector.encoder),
        ).start()
        server.serve_until_signal()

    _run(work)


def detector_loader(plugin_config, model_dir: Optional[str], learn_dir: Optional[str], follow_dir: Optional[str]):
    """What the server scores with: a model from a file, a learner, or a follower of one.

    Learning mode and following start at once (no model to load); the store and the history are
    checked here so that an unusable directory stops `serve` with a clear message.
    """
    from logllm_plugin.detector import load_detector

    device = plugin_config.server.device
    if learn_dir:
        from logllm_plugin.learning.learner import LearningDetector

        initial = load_detector(model_dir, device=device) if model_dir else None
        learner = LearningDetector(learn_dir, plugin_config, device=device, initial=initial)
        return lambda: learner
    if follow_dir:
        from logllm_plugin.learning.follower import FollowingDetector

        follower = FollowingDetector(follow_dir, plugin_config, device=device)
        return lambda: follower
    return lambda: load_detector(model_dir, device=device)


@main.group("bench")
def bench() -> None:
    """Benchmarks with JSON output and a baseline measured in the same run."""


@bench.command("server")
@click.option("--model", "model_dir", help="Model directory (default: the embedded model).")
@click.option("--data", "data_path", help="Sequences to send (default: the bundled sample).")
@click.option("--requests", "requests_per_level", type=click.IntRange(1), default=400, show_default=True,
              help="Requests per concurrency level and batching mode.")
@click.option("--concurrency", default="1,8,32", show_default=True, help="Comma-separated client counts.")
@click.option("--max-batch", type=click.IntRange(1), default=64, show_default=True, help="Batching on: --max-batch of the server.")
@click.option("--max-wait-ms", type=click.FloatRange(0), default=5.0, show_default=True, help="Batching on: --max-wait-ms of the server.")
@click.option("--threads", type=click.IntRange(1, 256), help="--threads of the server (default: all cores).")
@click.option("--client", type=click.Choice(["auto", "ghz", "process", "threads"]), default="auto", show_default=True,
              help="Load generator: ghz (Go), a separate Python process, or threads in this process; auto: ghz if found.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_server_cmd(model_dir: Optional[str], data_path: Optional[str], requests_per_level: int, concurrency: str,
                     max_batch: int, max_wait_ms: float, threads: Optional[int], client: str, as_json: bool):
    """Sequences/s and p50/p99 latency of a real server, dynamic batching on vs off, and peak RSS."""
    def work():
        from logllm_plugin.benchmarks.server import run_server_bench

        levels = [int(x) for x in concurrency.split(",") if x.strip()]
        result = run_server_bench(model_dir=model_dir, data_path=data_path, requests_per_level=requests_per_level,
                                  concurrency_levels=levels, max_batch=max_batch, max_wait_ms=max_wait_ms,
                                  threads=threads, client=client, progress=lambda m: click.echo(m, err=True))
        if not as_json:
            for row in result["runs"]:
                click.echo(f"batching {row['batching']:<3} concurrency {row['concurrency']:>3}: "
                           f"{row['sequences_per_s']:8.1f} seq/s  p50 {row['p50_ms']:7.2f} ms  p99 {row['p99_ms']:7.2f} ms"
                           f"  CPU client {row['client_cpu_share']:.0%} server {row['server_cpu_share'] or 0:.0%}")
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
@click.option("--storm", is_flag=True, help="Every sequence anomalous (threshold 0): the cost of evidence in an incident.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_pipeline_cmd(model_dir, data_path, key_regex, repeat, batch, threads, storm, as_json):
    """Lines/s read → sequence → template → embed → score, warm and cold, beside Drain3 alone."""
    def work():
        import torch

        from logllm_plugin.benchmarks.pipeline import run_pipeline_bench

        if threads:
            torch.set_num_threads(threads)  # the bench calls the model from this thread
        read_kwargs = {"key_regex": key_regex} if key_regex else {}
        result = run_pipeline_bench(model_dir=model_dir, data_path=data_path, repeat=repeat, batch=batch,
                                    read_kwargs=read_kwargs, storm=storm, progress=lambda m: click.echo(m, err=True))
        if not as_json:
            click.echo(f"{result['lines']:,} lines, {result['sequences']:,} sequences "
                       f"({result['anomalous_sequences']:,} anomalous) on {result['cpu_count']} CPUs")
            click.echo(f"pipeline warm: {result['lines_per_s']:,} lines/s   cold: {result['cold_lines_per_s']:,} lines/s")
            click.echo(f"Drain3 alone:  {result['baseline_lines_per_s']:,} lines/s   "
                       f"ratio {result['ratio_to_baseline']}")
            click.echo(f"one sequence alone: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms; "
                       f"of new lines: p50 {result['novel_p50_ms']} ms, p99 {result['novel_p99_ms']} ms; "
                       f"peak RSS {result['peak_rss_mb']} MB")
            click.echo(f"distinct masked lines {result['distinct_masked_lines']:,} "
                       f"({result['distinct_masked_lines_per_10k']:,} per 10k), new to the model "
                       f"{result['novel_masked_lines']:,}; encoder {result['encoder_lines_per_s']} lines/s "
                       f"({result['encoder_dtype']})")
            for phase in ("cold", "warm"):
                shares = ", ".join(f"{k} {v:.0%}" for k, v in result[f"{phase}_time_share"].items())
                click.echo(f"{phase} time: {shares}")
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


@bench.command("collector")
@click.option("--model", "model_dir", help="Model of the inference server (default: the embedded model).")
@click.option("--data", "data_path", help="Log lines to send (default: the bundled sample's lines).")
@click.option("--records", type=int, default=20_000, show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), help="--threads of the inference server.")
@click.option("--no-bridge", is_flag=True, help="Skip the OTLP bridge run.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_collector_cmd(model_dir, data_path, records, threads, no_bridge, as_json):
    """Records/s through the collector with the logllm processor beside the same collector without
    it (and the OTLP bridge), same run, same input. Builds the collector (Go) when not cached."""
    def work():
        from collectors.otel.bench_collector import run_collector_bench
        from logllm_plugin.benchmarks.server import DEFAULT_DATA
        from logllm_plugin.inputs import load_sequences

        lines = [line for s in load_sequences(data_path or str(DEFAULT_DATA))[0] for line in s.lines]
        result = run_collector_bench(lines=lines, records=records, model_dir=model_dir, threads=threads,
                                     with_bridge=not no_bridge)
        if not as_json:
            click.echo(f"collector without logllm: {result['collector_plain_records_per_s']:.0f} records/s; "
                       f"with logllm: {result['collector_logllm_records_per_s']:.0f} records/s "
                       f"(ratio {result['logllm_to_plain_ratio']})")
        click.echo(json.dumps(result) if as_json else "")

    _run(work)


@bench.command("bridge")
@click.option("--model", "model_dir", help="Model scoring inside the bridge (default: the embedded model).")
@click.option("--data", "data_path", help="Log lines to send (default: the bundled sample's lines).")
@click.option("--records", type=click.IntRange(1), default=20_000, show_default=True)
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


@bench.command("learn")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Labeled sequences (JSONL); the `split` field, else file order, makes train/test.")
@click.option("--train-fraction", type=click.FloatRange(0.05, 0.95), default=0.7, show_default=True,
              help="Without a split field: the first share (file order) is the history.")
@click.option("--contamination", type=click.FloatRange(0.0, 0.5), default=0.0, show_default=True,
              help="Mix this share of the training part's anomalies, unlabeled, into the history.")
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True, help="--threads of the server.")
@click.option("--timeout", "timeout_s", type=float, default=1800.0, show_default=True,
              help="Longest wait for learning → serving.")
@click.option("--no-reference", is_flag=True, help="Skip `train small --normal-only` on the same history.")
@click.option("--drift", is_flag=True, help="Instead: a release (new line types) after learning; false positives "
              "before and after the scheduled retrain.")
@click.option("--retrain-every", "retrain_every_s", type=float, default=30.0, show_default=True,
              help="With --drift: the server's --retrain-every, in seconds.")
@click.option("--under-retrain", is_flag=True, help="Instead: scoring throughput while a retrain runs, as a ratio "
              "to scoring without one (same run), and the server's and trainer's peak RSS.")
@click.option("--full-history", is_flag=True, help="With --under-retrain: fill the history to "
              "learning.history_max_bytes first.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_learn_cmd(data_path, train_fraction, contamination, threads, timeout_s, no_reference, drift, retrain_every_s,
                    under_retrain, full_history, as_json):
    """serve --learn over HTTP: stream the history, wait for `serving`, stream the test part; F1 beside
    `train small --normal-only` and the novelty rule on the same history, same run."""
    def work():
        from logllm_plugin.benchmarks.learning import run_drift_bench, run_learning_bench

        if full_history and not under_retrain:
            raise click.UsageError("--full-history goes with --under-retrain")
        if under_retrain:
            from logllm_plugin.benchmarks.learning_load import run_retrain_load_bench

            result = run_retrain_load_bench(data_path, train_fraction=train_fraction, threads=threads,
                                            full_history=full_history, timeout_s=timeout_s,
                                            progress=lambda m: click.echo(m, err=True))
            click.echo(json.dumps(result))
            return
        if drift:
            result = run_drift_bench(data_path, train_fraction=train_fraction, threads=threads,
                                     retrain_every_s=retrain_every_s, timeout_s=timeout_s,
                                     progress=lambda m: click.echo(m, err=True))
            click.echo(json.dumps(result))
            return
        result = run_learning_bench(data_path, train_fraction=train_fraction, contamination=contamination,
                                    threads=threads, timeout_s=timeout_s, reference=not no_reference,
                                    progress=lambda m: click.echo(m, err=True))
        if not as_json:
            click.echo(f"{result['data']} ({result['split']}): history {result['history']}, test {result['test']} "
                       f"({result['test_anomalies']} anomalous); learning → serving {result.get('learning_to_serving_s')} s")
            for name in ("learned", "train_small_normal_only", "novelty_rule"):
                if name in result:
                    r = result[name]
                    click.echo(f"{name:24} F1 {r['f1']:.4f}  p {r['precision']:.4f}  r {r['recall']:.4f}")
        click.echo(json.dumps(result) if as_json else "")

    _run(work)
