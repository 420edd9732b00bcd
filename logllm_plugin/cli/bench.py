"""`logllm-plugin bench ...`: benchmarks with JSON output and a baseline measured in the same run."""
from __future__ import annotations

import json
import sys
from typing import Optional

import click

from logllm_plugin.cli.common import load_and_report, logger, run

@click.group("bench")
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

    run(work)


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
@click.option("--head-dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True, help="The head's scoring dtype, as server.dtype sets it (evidence stays float32).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_pipeline_cmd(model_dir, data_path, key_regex, repeat, batch, threads, storm, head_dtype, as_json):
    """Lines/s read → sequence → template → embed → score, warm and cold, beside Drain3 alone."""
    def work():
        import torch

        from logllm_plugin.benchmarks.pipeline import run_pipeline_bench

        if threads:
            torch.set_num_threads(threads)  # the bench calls the model from this thread
        read_kwargs = {"key_regex": key_regex} if key_regex else {}
        result = run_pipeline_bench(model_dir=model_dir, data_path=data_path, repeat=repeat, batch=batch,
                                    read_kwargs=read_kwargs, storm=storm, head_dtype=head_dtype,
                                    progress=lambda m: click.echo(m, err=True))
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
                       f"({result['encoder_dtype']}); head {result['head_dtype']}")
            for phase in ("cold", "warm"):
                shares = ", ".join(f"{k} {v:.0%}" for k, v in result[f"{phase}_time_share"].items())
                click.echo(f"{phase} time: {shares}")
        click.echo(json.dumps(result) if as_json else "")

    run(work)


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

    run(work)


def _sample_lines(data_path):
    """Every line of `data_path` (default: the bundled sample), in order: what the OTLP benches send."""
    from logllm_plugin.benchmarks.server import DEFAULT_DATA
    from logllm_plugin.inputs import load_input

    return [line for s in load_input(data_path or str(DEFAULT_DATA))[0] for line in s.lines]


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

        result = run_collector_bench(lines=_sample_lines(data_path), records=records, model_dir=model_dir, threads=threads,
                                     with_bridge=not no_bridge)
        if not as_json:
            click.echo(f"collector without logllm: {result['collector_plain_records_per_s']:.0f} records/s; "
                       f"with logllm: {result['collector_logllm_records_per_s']:.0f} records/s "
                       f"(ratio {result['logllm_to_plain_ratio']})")
        click.echo(json.dumps(result) if as_json else "")

    run(work)


@bench.command("bridge")
@click.option("--model", "model_dir", help="Model scoring inside the bridge (default: the embedded model).")
@click.option("--data", "data_path", help="Log lines to send (default: the bundled sample's lines).")
@click.option("--records", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object on the last line.")
def bench_bridge_cmd(model_dir, data_path, records, as_json):
    """Records/s through the OTLP bridge beside a plain OTLP forward measured in the same run."""
    def work():
        from collectors.otel.bench import run_bridge_bench

        result = run_bridge_bench(lines=_sample_lines(data_path), records=records, model_dir=model_dir)
        if not as_json:
            click.echo(f"plain forward: {result['plain_forward_records_per_s']:.0f} records/s; "
                       f"bridge: {result['bridge_records_per_s']:.0f} records/s "
                       f"(ratio {result['bridge_to_plain_ratio']})")
        click.echo(json.dumps(result) if as_json else "")

    run(work)


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
        from logllm_plugin.benchmarks.learning import ServerRefused

        try:
            learn_bench()
        except ServerRefused as exc:
            raise click.ClickException(str(exc)) from None

    def learn_bench():
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

    run(work)


@bench.command("analyze")
@click.option("--llm", "llm_dir", required=True, type=click.Path(file_okay=False),
              help="Local chat model directory (e.g. from `logllm-plugin dev small-llm`).")
@click.option("--adapter", "adapter_dir", type=click.Path(file_okay=False), help="peft adapter from `train llm`.")
@click.option("--input", "input_path", required=True,
              help="Labeled sequences (e.g. from `data generate`): the anomalies are explained.")
@click.option("--n", type=click.IntRange(1, 10_000), default=8, show_default=True, help="Anomalies to explain.")
@click.option("--lines", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Lines per sequence: each anomaly is padded in front with normal lines.")
@click.option("--threads", type=click.IntRange(1, 256), help="torch threads (default: torch's choice).")
@click.option("--batch-size", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Sequences per analyzer call (1: the figures are latencies).")
@click.option("--quantize", type=click.Choice(["int8", "none"]), help="CPU weights (default: analysis.quantize).")
@click.option("--timeout-s", type=float, help="Per call (default: analysis.timeout_s).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def bench_analyze_cmd(llm_dir, adapter_dir, input_path, n, lines, threads, batch_size, quantize, timeout_s, as_json):
    """Seconds per LLM explanation (p50/p99), tokens/s, fallback rate, beside the knowledge base."""
    def work():
        from logllm_plugin.analyzers.qwen import prefer_passive_openmp

        prefer_passive_openmp()  # before torch loads
        from logllm_plugin.benchmarks.analyze import run_analyze_bench

        sequences = load_and_report(input_path, fmt=None, line_regex=None, key_regex=None, sequencer=None, what="input")
        result = run_analyze_bench(sequences, llm_dir=llm_dir, adapter_dir=adapter_dir, n=n, lines=lines,
                                   threads=threads, batch_size=batch_size, quantize=quantize, timeout_s=timeout_s,
                                   progress=lambda m: click.echo(m, err=True))
        if as_json:
            click.echo(json.dumps(result))
            return
        click.echo(f"{result['explanations']} explanations of {lines}-line sequences: "
                   f"p50 {result['seconds_per_explanation_p50']} s, p99 {result['seconds_per_explanation_p99']} s; "
                   f"prompt {result['prompt_tokens_per_s']} tok/s, generated {result['generated_tokens_per_s']} tok/s")
        click.echo(f"fallback rate {result['fallback_rate']} {result['statuses']}; json_valid_rate "
                   f"{result['json_valid_rate']} category_accuracy {result['category_accuracy']} "
                   f"(knowledge base {result['knowledge_base_category_accuracy']})")

    run(work, llm=True)


@bench.command("train-llm")
@click.option("--base", "base_dir", required=True, type=click.Path(file_okay=False),
              help="Local chat model directory (e.g. from `logllm-plugin dev small-llm`).")
@click.option("--train", "train_path", required=True, help="Labeled sequences, as for `train llm`.")
@click.option("--steps", type=click.IntRange(1, 10_000), default=20, show_default=True,
              help="Optimizer steps measured (the first steps of `train llm` with the same seed).")
@click.option("--threads", type=click.IntRange(1, 256), help="torch threads (default: torch's choice).")
@click.option("--batch-size", type=click.IntRange(1), help="Default: train llm's.")
@click.option("--context-lines", type=click.IntRange(0), help="Default: train llm's.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def bench_train_llm_cmd(base_dir, train_path, steps, threads, batch_size, context_lines, as_json):
    """Seconds, CPU seconds and peak RSS per `train llm` step at its defaults, beside the goals."""
    def work():
        from logllm_plugin.analyzers.qwen import prefer_passive_openmp

        prefer_passive_openmp()  # before torch loads
        from logllm_plugin.benchmarks.train_llm import run_train_llm_bench

        overrides = {k: v for k, v in (("batch_size", batch_size), ("context_lines", context_lines)) if v is not None}
        sequences = load_and_report(train_path, fmt=None, line_regex=None, key_regex=None, sequencer=None, what="train")
        result = run_train_llm_bench(sequences, base_dir=base_dir, steps=steps, threads=threads, overrides=overrides,
                                     progress=lambda m: click.echo(m, err=True))
        if as_json:
            click.echo(json.dumps(result))
            return
        click.echo(f"{result['steps']} steps of batch {result['batch_size']} (longest {result['longest_batch_tokens']} "
                   f"tokens): {result['seconds_per_step']} s/step, {result['cpu_seconds_per_step']} CPU s/step "
                   f"on {result['threads']} threads; training peak RSS {result['training_peak_rss_mb']} MB")

    run(work, llm=True)


@bench.command("explain")
@click.option("--input", "input_path", required=True,
              help="Labeled sequences with categories (e.g. `data generate` with another seed than the training data).")
@click.option("--llm", "llm_dir", type=click.Path(file_okay=False), help="Also score this local chat model (the base).")
@click.option("--adapter", "adapter_dir", type=click.Path(file_okay=False),
              help="Also score the base + this adapter from `train llm` (the tuned model).")
@click.option("--openai-url", help="Also score an OpenAI-compatible server (its /v1 URL).")
@click.option("--openai-model", help="The model (or LoRA adapter) name on --openai-url.")
@click.option("--n", type=click.IntRange(1, 10_000), default=20, show_default=True, help="Anomalies to explain.")
@click.option("--lines", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Lines per sequence: each anomaly is padded in front with normal lines.")
@click.option("--threads", type=click.IntRange(1, 256), help="torch threads (default: torch's choice).")
@click.option("--timeout-s", type=float, help="Per explanation (default: analysis.timeout_s).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
def bench_explain_cmd(input_path, llm_dir, adapter_dir, openai_url, openai_model, n, lines, threads, timeout_s,
                      as_json):
    """Knowledge base, base LLM, tuned LLM (and a served model) on the same labeled anomalies: category
    accuracy, evidence precision, completeness, personal data absent, seconds per explanation."""
    def work():
        from logllm_plugin.analyzers.qwen import prefer_passive_openmp

        if adapter_dir and not llm_dir:
            raise click.UsageError("--adapter needs --llm (the base model it adapts)")
        if bool(openai_url) != bool(openai_model):
            raise click.UsageError("--openai-url and --openai-model go together")
        prefer_passive_openmp()  # before torch loads
        from logllm_plugin.benchmarks.explain import run_explain_bench, table

        sequences = load_and_report(input_path, fmt=None, line_regex=None, key_regex=None, sequencer=None, what="input")
        report = run_explain_bench(sequences, llm_dir=llm_dir, adapter_dir=adapter_dir, openai_url=openai_url,
                                   openai_model=openai_model, n=n, lines=lines, threads=threads,
                                   timeout_s=timeout_s, progress=lambda m: logger.info("%s", m))
        click.echo(json.dumps(report) if as_json else table(report))

    run(work, llm=True)
