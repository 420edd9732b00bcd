"""`logllm-plugin train small` (the BERT+MoE detector) and `train llm` (a LoRA adapter for explanations)."""
from __future__ import annotations

import sys
from typing import Optional

import click

from logllm_plugin.cli.common import config_option, input_options, load_config, load_and_report, logger, run
from logllm_plugin.cli.history_source import history_options, load_history

# What `--valid` defaults to; README and configs/plugin.yaml say the same (tests/e2e/test_cli_wiring.py).
VALID_HELP = ("Validation data for the threshold (default: a seeded random training.valid_fraction, 20%, "
              "of --train; training.holdout: tail takes the last part instead).")
@click.group("train")
def train() -> None:
    """Train models (`small`: the BERT+MoE detector)."""


@train.command("small")
@click.option("--train", "train_path", help="Training data (sequence JSONL/JSON, record JSONL, text); or --from-es.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--valid", "valid_path", help=VALID_HELP)
@config_option
@click.option("--epochs", type=click.IntRange(1),
              help="Training epochs (overrides the config: training.epochs, with --normal-only learning.epochs).")
@click.option("--seed", type=click.IntRange(0), help="Random seed; the same seed gives the same model.")
@click.option("--normal-only", is_flag=True, help="Treat the data as normal history and inject anomalies.")
@click.option("--train-split", help="Use only sequences whose `split` field has this value.")
@click.option("--train-range", help="Use a fraction range of the training data in file order, e.g. 0:0.7.")
@click.option("--valid-split", help="Validation taken from --valid (or --train) by `split` value.")
@click.option("--valid-range", help="Validation taken from --valid (or --train) by fraction range.")
@click.option("--shuffle-seed", type=click.IntRange(0), help="Shuffle the data with this seed before taking --*-range parts.")
@click.option("--original-size", is_flag=True, help="Use the LogLLM paper's head sizes (512 wide, 6 layers).")
@input_options
@history_options
def train_small_cmd(train_path, out_dir, valid_path, config_path, epochs, seed, normal_only, train_split,
                    train_range, valid_split, valid_range, shuffle_seed, original_size, fmt, line_regex, key_regex, max_lines,
                    history):
    """Train the BERT+MoE detector and write a model directory."""
    def work():
        import dataclasses

        from logllm_plugin.config import ModelConfig
        from trainers.small import train_small

        overrides = {"training": {"epochs": epochs, "seed": seed}, "sequencer": {"max_lines": max_lines}}
        if original_size:
            overrides["model"] = dataclasses.asdict(ModelConfig.original())
        config = load_config(config_path, overrides)
        if normal_only and epochs is None:
            config = config.label_free()  # learning mode's epochs: the same label-free model
        common = dict(fmt=fmt, line_regex=line_regex, key_regex=key_regex, sequencer=config.sequencer)
        if bool(train_path) == bool(history.get("url")):
            raise click.UsageError("give exactly one of --train FILE or --from-es URL")
        train_seqs = load_history(history, config.sequencer, normal_only)
        if train_seqs is None:
            train_seqs = load_and_report(train_path, split=train_split, fraction=train_range, shuffle_seed=shuffle_seed,
                                         what="train", **common)
        valid_seqs = None
        if valid_path or valid_split or valid_range:
            valid_seqs = load_and_report(valid_path or train_path, split=valid_split, fraction=valid_range,
                                         shuffle_seed=shuffle_seed, what="valid", **common)
        progress, done = epoch_progress(config.training.epochs)
        outcome = train_small(train_seqs, valid_seqs, config, out_dir, normal_only=normal_only, progress=progress)
        done()
        metrics = outcome.metrics
        m, b = metrics["valid"], metrics.get("valid_baseline")
        click.echo(f"model written to {outcome.model_dir}")
        click.echo(f"validation ({metrics['threshold_source']}; {m['n']} sequences, {m['anomalies']} anomalous): "
                   f"precision {m['precision']} recall {m['recall']} f1 {m['f1']} pr_auc {m['pr_auc']} "
                   f"threshold {m['threshold']:.4f}")
        if b:
            click.echo(f"baseline (LR on template counts), same validation ({b['n']} sequences): f1 {b['f1']} "
                       f"precision {b['precision']} recall {b['recall']}")
        for warning in small_data_warnings(metrics["train_sequences"], m["n"], m["anomalies"]):
            click.echo(f"warning: {warning}", err=True)

    run(work)


# Below these counts precision/recall/F1 move by a large step per sequence: one error in 10
# anomalies is 0.1 of recall. Figures on fewer are printed, with a warning saying so.
MIN_TRAIN_SEQUENCES = 50
MIN_VALID_SEQUENCES = 30
MIN_VALID_PER_CLASS = 5


def small_data_warnings(train_n: int, valid_n: int, valid_anomalies: int) -> list[str]:
    out = []
    if train_n < MIN_TRAIN_SEQUENCES:
        out.append(f"trained on {train_n} sequences (fewer than {MIN_TRAIN_SEQUENCES}): the model has seen little "
                   "of what normal looks like")
    normal = valid_n - valid_anomalies
    if valid_n < MIN_VALID_SEQUENCES or min(valid_anomalies, normal) < MIN_VALID_PER_CLASS:
        out.append(f"the validation figures rest on {valid_n} sequences ({valid_anomalies} anomalous, {normal} normal); "
                   f"below {MIN_VALID_SEQUENCES} sequences or {MIN_VALID_PER_CLASS} of either class they say little "
                   "(give more data or --valid FILE)")
    return out


def epoch_progress(total_epochs: int):
    """(progress callback, close): a tqdm bar on a terminal, one plain line per epoch elsewhere (CI, nohup, pipes)."""
    keys = ("loss", "valid_pr_auc", "valid_f1")
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total_epochs, desc="training", unit="epoch", file=sys.stderr)

        def on_epoch(epoch, total, record):
            bar.update(1)
            bar.set_postfix({k: v for k, v in record.items() if k in keys})
            logger.info("epoch %s", record)

        return on_epoch, bar.close

    def on_epoch_line(epoch, total, record):
        figures = " ".join(f"{k} {record[k]}" for k in keys if record.get(k) is not None)
        click.echo(f"epoch {epoch}/{total} ({record.get('phase', '')}): {figures}", err=True)

    return on_epoch_line, lambda: None


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
@click.option("--context-lines", type=click.IntRange(0), default=20, show_default=True,
              help="Place each anomaly among normal lines of the data, up to this many lines in all (0: alone).")
@click.option("--eval-items", type=click.IntRange(0, 100_000), default=32, show_default=True,
              help="Held-out pairs answered by the tuned and the base model for metrics.json.")
@click.option("--merge", is_flag=True, help="Also write merged full weights (safetensors) to OUT/merged.")
def train_llm_cmd(base_dir, train_path, out_dir, method, max_steps, epochs, batch_size, lr, seed, valid_fraction,
                  max_length, max_lines: Optional[int], context_lines, eval_items, merge):
    """Fine-tune a LoRA adapter that explains anomalous sequences as JSON."""
    def work():
        from logllm_plugin.analyzers.qwen import prefer_passive_openmp

        prefer_passive_openmp()  # before torch loads
        from trainers.llm import LLMTrainConfig, check_method_support, train_llm

        options = {"max_lines": max_lines} if max_lines else {}
        config = LLMTrainConfig(method=method, epochs=epochs, max_steps=max_steps, learning_rate=lr,
                                batch_size=batch_size, seed=seed, valid_fraction=valid_fraction,
                                max_length=max_length, context_lines=context_lines, eval_max_items=eval_items,
                                merge=merge, **options)
        check_method_support(method)  # before reading data: a missing GPU is the first thing to say
        sequences = load_and_report(train_path, fmt=None, line_regex=None, key_regex=None, sequencer=None, what="train")
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

    run(work, llm=True)
