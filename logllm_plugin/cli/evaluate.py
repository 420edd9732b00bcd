"""`logllm-plugin eval`: a model's figures on labeled data, beside the count baseline and the novelty rule."""
from __future__ import annotations

import json
from pathlib import Path

import click

from logllm_plugin.cli.common import config_option, input_options, load_config, load_and_report, run

@click.command("eval")
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
        from trainers.novelty import NoveltyRule
        from trainers.recall_diagnosis import MIN_RECALL, diagnose_missed, low_recall_message

        config = load_config(config_path, {"sequencer": {"max_lines": max_lines}})
        detector = load_detector(model_dir)
        detector.settings.evidence = evidence_method
        sequences = load_and_report(data_path, fmt=fmt, line_regex=line_regex, key_regex=key_regex,
                                    sequencer=config.sequencer, split=split, fraction=fraction,
                                    shuffle_seed=shuffle_seed, what="data")
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
        table = history_table(detector)
        if table is not None:
            masked = [[detector.store.mask(line) for line in s.lines] for s in labeled]
            result["baseline_novelty"] = binary_metrics(labels, NoveltyRule(table).predict(masked), 0.5)
            result["baseline_novelty"]["kind"] = ("novelty rule: a masked line or a consecutive pair of them never "
                                                  "seen in the normal training history (label-free)")
            if detector.novelty is not None and result["anomalies"] and result["recall"] < MIN_RECALL:
                # a label-free model that misses much: say whether the data or the model is why
                result["recall_diagnosis"] = diagnose_missed(table, masked, labels,
                                                             [v.label == "anomalous" for v in verdicts])
                click.echo("note: " + low_recall_message(result["recall"], result["recall_diagnosis"]), err=True)
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

    run(work)


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


def history_table(detector):
    """The model's table of its normal training history (the novelty rule's), or None for models
    saved without one (before the table existed)."""
    from logllm_plugin.artifacts import read_json
    from trainers.novelty import NOVELTY_FILE, HistoryTable

    path = getattr(detector, "model_dir", None)
    if path is None or not (Path(path) / NOVELTY_FILE).is_file():
        return None
    return HistoryTable.from_dict(read_json(Path(path) / NOVELTY_FILE)["table"])


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
