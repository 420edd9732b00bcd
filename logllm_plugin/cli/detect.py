"""`logllm-plugin detect`: one verdict per sequence of a log input, locally or on a server."""
from __future__ import annotations

import json
import sys

import click

from logllm_plugin.cli.common import config_option, input_options, load_config, load_and_report, run, sequence_scorer

@click.command("detect")
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

        config = load_config(config_path, {"sequencer": {"max_lines": max_lines}})
        knowledge_base = KnowledgeBaseAnalyzer(config.analysis.knowledge_base)
        score = sequence_scorer(model_dir, servers, token_file, tls_ca, timeout_s)
        sequences = in_input_order(load_and_report(input_path, fmt=fmt, line_regex=line_regex, key_regex=key_regex,
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

    run(work)


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


def _print_table(sequences, verdicts, rows) -> None:
    anomalous = sum(v.label == "anomalous" for v in verdicts)
    click.echo(f"{'sequence':<40} {'lines':>5} {'label':<9} {'score':>6} {'category':<16} {'novel':>5}  evidence")
    for seq, v, row in zip(sequences, verdicts, rows):
        first = seq.lines[v.evidence[0]] if v.evidence else ""
        first = (first[:70] + "…") if len(first) > 71 else first
        click.echo(f"{v.id[:40]:<40} {len(seq.lines):>5} {v.label:<9} {v.score:6.3f} {row['category'][:16]:<16} "
                   f"{v.novel_templates:>5}  {','.join(map(str, v.evidence))} {first}")
    click.echo(f"{len(verdicts)} sequences, {anomalous} anomalous")
