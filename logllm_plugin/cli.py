"""`logllm-plugin` command line. The only place that configures logging or prints.

Heavy modules (torch, transformers, trainers) are imported inside commands so `--help` is fast.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import click

from logllm_plugin import __version__
from logllm_plugin.cli_history import history_options, load_history

logger = logging.getLogger("logllm_plugin.cli")

def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input or setup: shown as one clear line, never a traceback."""
    from logllm_plugin.artifacts import ModelDirError
    from logllm_plugin.config import ConfigError
    from logllm_plugin.encoder import EncoderUnavailable
    from logllm_plugin.learning.history import HistoryError
    from logllm_plugin.readers import InputError

    errors: list[type[BaseException]] = [ModelDirError, ConfigError, EncoderUnavailable, InputError, HistoryError]
    try:
        from trainers.small import TrainingDataError

        errors.append(TrainingDataError)
    except ImportError:  # trainers not installed: nothing to catch from it
        pass
    return tuple(errors)


def _run(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except _user_errors() as exc:
        raise click.ClickException(str(exc)) from None


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # transformers prints weight-loading bars and notices on stderr; keep them quiet unless asked.
    if verbose < 2:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub, whatever a library tries


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="logllm-plugin")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Sequence-level log anomaly detection with explanations, for OTel and Elasticsearch stacks."""
    _setup_logging(verbose)


# -------------------------------------------------------------------------- shared options
def input_options(fn):
    fn = click.option("--format", "fmt", type=click.Choice(["sequence_jsonl", "sequence_json", "record_jsonl", "text"]),
                      help="Input format (sniffed when omitted).")(fn)
    fn = click.option("--line-regex", help="Text logs: regex with named groups key/timestamp/level/message.")(fn)
    fn = click.option("--key-regex", help=r"Text logs: the first match is the sequence key, e.g. 'blk_-?\d+'.")(fn)
    fn = click.option("--max-lines", type=click.IntRange(1),
                      help="Sequencer: close a sequence at this many lines (sequencer.max_lines; min_lines "
                           "follows it down unless set).")(fn)
    return fn


def config_option(fn):
    """`--config FILE` for every command with settings: CLI flags > LOGLLM_* environment > file > defaults."""
    return click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="YAML config (see configs/plugin.yaml); LOGLLM_<SECTION>__<KEY> variables override it.")(fn)


def _config(config_path: Optional[str], overrides: dict):
    from logllm_plugin.config import load_config

    return load_config(config_path, overrides=overrides, warn=lambda message: click.echo(f"warning: {message}", err=True))


def read_token_file(path: Optional[str], option: str = "--token-file") -> Optional[str]:
    """The bearer token in `path` (None without a path); a missing, unreadable or empty file is one clear line."""
    if not path:
        return None
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{option} {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not token:
        raise click.ClickException(f"{option} {path} is empty")
    return token


def _load(path: str, *, fmt, line_regex, key_regex, sequencer, split=None, fraction=None, shuffle_seed=None,
          what="input"):
    from logllm_plugin.inputs import Selection, load_sequences

    selection = Selection.parse(split, fraction, shuffle_seed)
    sequences, report = load_sequences(path, fmt=fmt, line_regex=line_regex, key_regex=key_regex,
                                       sequencer=sequencer, selection=selection)
    click.echo(f"{what}: {path}: {report.summary()}; {len(sequences)} sequences selected", err=True)
    return sequences


# ---------------------------------------------------------------------------------- train
# What `--valid` defaults to; README and configs/plugin.yaml say the same (tests/unit/test_cli_docs.py).
VALID_HELP = ("Validation data for the threshold (default: a seeded random training.valid_fraction, 20%, "
              "of --train; training.holdout: tail takes the last part instead).")
@main.group()
def train() -> None:
    """Train models (`small`: the BERT+MoE detector)."""


@train.command("small")
@click.option("--train", "train_path", help="Training data (sequence JSONL/JSON, record JSONL, text); or --from-es.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@click.option("--valid", "valid_path", help=VALID_HELP)
@config_option
@click.option("--epochs", type=click.IntRange(1), help="Training epochs (overrides the config).")
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
        config = _config(config_path, overrides)
        common = dict(fmt=fmt, line_regex=line_regex, key_regex=key_regex, sequencer=config.sequencer)
        if bool(train_path) == bool(history.get("url")):
            raise click.UsageError("give exactly one of --train FILE or --from-es URL")
        train_seqs = load_history(history, config.sequencer, normal_only)
        if train_seqs is None:
            train_seqs = _load(train_path, split=train_split, fraction=train_range, shuffle_seed=shuffle_seed,
                               what="train", **common)
        valid_seqs = None
        if valid_path or valid_split or valid_range:
            valid_seqs = _load(valid_path or train_path, split=valid_split, fraction=valid_range,
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

    _run(work)


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


# ----------------------------------------------------------------------------------- eval
@main.command("eval")
@click.option("--model", "model_dir", help="Model directory (default: the embedded model).")
@click.option("--data", "data_path", required=True, help="Labeled data to evaluate on.")
@click.option("--split", help="Only sequences whose `split` field has this value.")
@click.option("--range", "fraction", help="A fraction range of the data in file order, e.g. 0.7:1.")
@click.option("--shuffle-seed", type=click.IntRange(0), help="Shuffle the data with this seed before taking --range.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object on the last line.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False), help="Write PR curve and confusion matrix PNGs.")
@click.option("--evidence", "evidence_method", type=click.Choice(["auto", "occlusion", "gradient"]), default="auto",
              show_default=True, help="How evidence lines are found (auto: occlusion for windows of up to 6 distinct lines, gradients beyond).")
@config_option
@input_options
def eval_cmd(model_dir, data_path, split, fraction, shuffle_seed, as_json, report_dir, evidence_method, config_path, fmt,
             line_regex, key_regex, max_lines):
    """Precision, recall, F1, accuracy, PR-AUC — beside the LR-on-template-counts baseline."""
    def work():
        from logllm_plugin.detector import load_detector
        from trainers.evaluation import binary_metrics, evidence_metrics, write_report

        config = _config(config_path, {"sequencer": {"max_lines": max_lines}})
        detector = load_detector(model_dir)
        detector.settings.evidence = evidence_method
        sequences = _load(data_path, fmt=fmt, line_regex=line_regex, key_regex=key_regex, sequencer=config.sequencer,
                          split=split, fraction=fraction, shuffle_seed=shuffle_seed, what="data")
        labeled = [s for s in sequences if s.label is not None]
        if not labeled:
            raise click.ClickException(f"{data_path}: no labeled sequence to evaluate on")
        if len(labeled) < len(sequences):
            click.echo(f"note: {len(sequences) - len(labeled)} unlabeled sequences are not counted", err=True)
        verdicts = detector.detect(labeled)
        labels = [s.label for s in labeled]
        scores = [v.score for v in verdicts]
        result = binary_metrics(labels, scores, detector.settings.threshold)
        baseline_scores = detector_baseline_scores(detector, labeled)
        if baseline_scores is not None:
            result["baseline"] = binary_metrics(labels, baseline_scores, 0.5)
            result["baseline"]["kind"] = "logistic regression on template counts (trained with the model)"
        novelty_scores = detector_novelty_rule_scores(detector, labeled)
        if novelty_scores is not None:
            result["baseline_novelty"] = binary_metrics(labels, novelty_scores, 0.5)
            result["baseline_novelty"]["kind"] = ("novelty rule: a masked line or a consecutive pair of them never "
                                                  "seen in the normal training history (label-free)")
        evidence = evidence_metrics(labeled, verdicts)
        if evidence is not None:
            result["evidence"] = evidence
            result["evidence"]["method"] = evidence_method
        result["model_version"] = detector.settings.model_version
        result["data"] = {"path": data_path, "split": split, "range": fraction, "shuffle_seed": shuffle_seed}
        if report_dir:
            for path in write_report(report_dir, labels, scores, detector.settings.threshold, baseline_scores):
                click.echo(f"wrote {path}", err=True)
        if not as_json:
            _print_metrics(result)
        click.echo(json.dumps(result) if as_json else "")

    _run(work)


def detector_baseline_scores(detector, sequences):
    """The saved baseline's scores on these sequences, or None for models saved without one."""
    from logllm_plugin.artifacts import read_json
    from trainers.baseline import TemplateCountBaseline

    path = getattr(detector, "model_dir", None)
    if path is None or not (Path(path) / "baseline.json").is_file():
        return None
    baseline = TemplateCountBaseline.from_dict(read_json(Path(path) / "baseline.json"))
    ids = [detector.store_ids(s.lines) for s in sequences]
    return baseline.predict_proba(ids)


def detector_novelty_rule_scores(detector, sequences):
    """The label-free novelty rule's 0/1 scores from the model's history table, or None for
    models saved without one (before the table existed)."""
    from logllm_plugin.artifacts import read_json
    from trainers.novelty import NOVELTY_FILE, HistoryTable, NoveltyRule

    path = getattr(detector, "model_dir", None)
    if path is None or not (Path(path) / NOVELTY_FILE).is_file():
        return None
    rule = NoveltyRule(HistoryTable.from_dict(read_json(Path(path) / NOVELTY_FILE)["table"]))
    return rule.predict([[detector.store.mask(line) for line in s.lines] for s in sequences])


def _print_metrics(m: dict) -> None:
    click.echo(f"sequences {m['n']} (anomalous {m['anomalies']}), threshold {m['threshold']:.4f}")
    click.echo(f"{'':10} {'precision':>9} {'recall':>7} {'f1':>7} {'accuracy':>8} {'pr_auc':>7}")
    rows = [("logllm", m)] + ([("baseline", m["baseline"])] if "baseline" in m else []) \
        + ([("novelty", m["baseline_novelty"])] if "baseline_novelty" in m else [])
    for name, r in rows:
        pr = "-" if r["pr_auc"] is None else f"{r['pr_auc']:.4f}"
        click.echo(f"{name:10} {r['precision']:9.4f} {r['recall']:7.4f} {r['f1']:7.4f} {r['accuracy']:8.4f} {pr:>7}")
    if "evidence" in m:
        e = m["evidence"]
        click.echo(f"evidence on {e['sequences']} flagged sequences with line labels: {e['precision']:.1%} of "
                   f"evidence lines are labeled anomalous; {e['hit_rate']:.1%} point at one or more")


# --------------------------------------------------------------------------------- detect
@main.command("detect")
@click.option("--model", "model_dir", help="Model directory (default: the embedded model).")
@click.option("--input", "input_path", required=True, help="Log input: a file path or - for stdin.")
@click.option("--output", "output_path", type=click.Path(dir_okay=False),
              help="Also write the JSONL verdicts to this file (stdout still follows --show).")
@click.option("--show", type=click.Choice(["auto", "table", "jsonl"]), default="auto",
              help="stdout: a table on a terminal, JSONL otherwise (auto), with or without --output.")
@click.option("--server", "servers", multiple=True,
              help="Score on a running server HOST:PORT instead of locally (repeat to balance round-robin).")
@click.option("--token-file", type=click.Path(dir_okay=False), help="With --server: file holding the bearer token.")
@click.option("--tls-ca", type=click.Path(dir_okay=False), help="With --server: PEM CA that signed the server's certificate.")
@click.option("--timeout-s", type=click.FloatRange(0, min_open=True), default=30.0, show_default=True,
              help="With --server: deadline per request.")
@config_option
@input_options
def detect_cmd(model_dir, input_path, output_path, show, servers, token_file, tls_ca, timeout_s, config_path,
               fmt, line_regex, key_regex, max_lines):
    """Score sequences; one JSON object per sequence, in input order (id, key, label, score, category,
    evidence, evidence_lines, line_numbers, novel_templates, model_version)."""
    def work():
        from logllm_plugin.analyzers.knowledge_base import KnowledgeBaseAnalyzer

        if servers and model_dir:
            raise click.UsageError("--model and --server exclude each other: the server has its model")
        config = _config(config_path, {"sequencer": {"max_lines": max_lines}})
        knowledge_base = KnowledgeBaseAnalyzer(config.analysis.knowledge_base)
        score = _remote_scorer(servers, token_file, tls_ca, timeout_s) if servers else _local_scorer(model_dir)
        sequences = in_input_order(_load(input_path, fmt=fmt, line_regex=line_regex, key_regex=key_regex,
                                         sequencer=config.sequencer))
        verdicts = []
        for start in range(0, len(sequences), 512):  # bounded memory on long inputs
            verdicts.extend(score(sequences[start : start + 512]))
        rows = [detect_row(seq, v, knowledge_base) for seq, v in zip(sequences, verdicts)]
        hint = unfamiliar_hint(sequences, verdicts, input_path, key_regex)
        if hint:
            click.echo(hint, err=True)
        if output_path:
            with open(output_path, "w", encoding="utf-8") as fh:
                for row in rows:
                    fh.write(json.dumps(row) + "\n")
        mode = show if show != "auto" else ("table" if sys.stdout.isatty() else "jsonl")
        if mode == "table":
            _print_table(sequences, verdicts, rows)
        else:
            for row in rows:
                click.echo(json.dumps(row))

    _run(work)


UNFAMILIAR_BELOW = 0.5  # mean familiarity under which the verdicts say more about the model than the logs


def unfamiliar_hint(sequences, verdicts, input_path: str, key_regex) -> str:
    """One stderr note when the model has not seen logs like these (most lines unfamiliar), with the
    command that trains on them: a page of confident `anomalous` verdicts would say nothing else."""
    scored = [v for v in verdicts if v.status == "ok"]
    if not scored:
        return ""
    mean = sum(v.familiarity for v in scored) / len(scored)
    if mean >= UNFAMILIAR_BELOW:
        return ""
    flagged = sum(v.label == "anomalous" for v in scored)
    key = f" --key-regex '{key_regex}'" if key_regex else ""
    return (f"note: this model saw {mean:.0%} of these lines' shapes in training (familiarity); its {flagged} "
            f"'anomalous' of {len(scored)} mostly mean 'never seen logs like these'. Learn their normal first:\n"
            f"  logllm-plugin train small --normal-only --train {input_path}{key} --out models/mine   "
            f"(or run `logllm-plugin serve --learn DIR` and send it your traffic)")


def in_input_order(sequences):
    """Sequences by their first input line (the sequencer emits keyed ones in the order they close)."""
    if not all(s.source_lines for s in sequences):
        return sequences  # sequence files: already in file order
    return sorted(sequences, key=lambda s: s.source_lines[0])


def detect_row(seq, verdict, knowledge_base) -> dict:
    """One JSONL object: the verdict, plus what maps it back to the input.

    `category` is the knowledge-base class of an anomalous sequence (a regex pass over its lines)
    unless the model itself learned named categories; normal sequences say "normal".
    """
    row = verdict.to_dict()
    if verdict.label == "anomalous" and verdict.category in ("", "anomaly"):
        row["category"] = knowledge_base.classify(seq.lines, verdict.evidence)[0].name
    row["key"] = seq.key
    row["closed_by"] = seq.closed_by
    row["line_numbers"] = list(seq.source_lines) if seq.source_lines else None
    row["evidence_lines"] = [seq.lines[i] for i in verdict.evidence if 0 <= i < len(seq.lines)]
    return row


def _local_scorer(model_dir):
    from logllm_plugin.detector import load_detector

    return load_detector(model_dir).detect


def _remote_scorer(servers, token_file, tls_ca, timeout_s):
    import grpc

    from logllm_plugin.client import InferenceClient

    token = read_token_file(token_file)
    client = InferenceClient(list(servers), token=token, tls_ca=tls_ca, timeout_s=timeout_s)

    def score(sequences):
        try:
            return client.detect(sequences)
        except grpc.RpcError as exc:
            raise click.ClickException(f"server {', '.join(servers)}: {exc.code().name}: {exc.details()}") from None
        except TimeoutError as exc:
            raise click.ClickException(str(exc)) from None

    return score


def _print_table(sequences, verdicts, rows) -> None:
    anomalous = sum(v.label == "anomalous" for v in verdicts)
    click.echo(f"{'sequence':<40} {'lines':>5} {'label':<9} {'score':>6} {'category':<16} {'novel':>5}  evidence")
    for seq, v, row in zip(sequences, verdicts, rows):
        first = seq.lines[v.evidence[0]] if v.evidence else ""
        first = (first[:70] + "…") if len(first) > 71 else first
        click.echo(f"{v.id[:40]:<40} {len(seq.lines):>5} {v.label:<9} {v.score:6.3f} {row['category'][:16]:<16} "
                   f"{v.novel_templates:>5}  {','.join(map(str, v.evidence))} {first}")
    click.echo(f"{len(verdicts)} sequences, {anomalous} anomalous")


# Registers serve and bench on `main`. Run the CLI as `logllm-plugin` or `python -m logllm_plugin`
# (not `-m logllm_plugin.cli`, which would load this module twice).
from logllm_plugin import cli_analysis, cli_data, cli_es, cli_learning, cli_llm, cli_otel, cli_serving  # noqa: E402,F401
