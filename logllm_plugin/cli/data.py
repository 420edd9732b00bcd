"""`logllm-plugin data ...`: generate, convert, split, check training data, and build LLM pairs."""
from __future__ import annotations

import json
from pathlib import Path

import click

from logllm_plugin.cli.common import run

EXIT_FINDINGS = 1  # `data check` found errors (or warnings with --strict)


@click.group("data")
def data() -> None:
    """Prepare training data: generate, convert, split, check, llm-pairs."""


@data.command("generate")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Sequence JSONL to write.")
@click.option("--n", "n", type=click.IntRange(1), default=1000, show_default=True, help="Number of sequences.")
@click.option("--anomaly-rate", type=click.FloatRange(0, 1), default=0.3, show_default=True, help="Share of anomalous sequences.")
@click.option("--silent-rate", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of anomalies that show only in the order or count of steps (no error lines).")
@click.option("--noise-rate", type=click.FloatRange(0, 1), default=0.4, show_default=True,
              help="Share of sequences with benign WARN/DEBUG noise lines.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="The same seed gives the same file.")
@click.option("--categories", help="Comma-separated anomaly categories (default: all of them; see --help).")
def generate_cmd(out_path, n, anomaly_rate, silent_rate, noise_rate, seed, categories):
    """Synthetic microservice request sequences (6-15 lines) with labeled anomaly categories.

    Categories: cascading_failure, auth_error, resource_exhaustion, timeout, data_format_error,
    concurrency_conflict, configuration_error, database_error. Each anomaly is `explicit` (error
    lines), `order` (steps out of order) or `count` (a step missing or repeated): see the
    `anomaly_kind` field.
    """
    def work():
        from collections import Counter

        from logllm_plugin.data.generate import CATEGORIES, GenerateOptions, generate
        from logllm_plugin.data.io import write_jsonl

        chosen = tuple(c.strip() for c in categories.split(",") if c.strip()) if categories else CATEGORIES
        opts = GenerateOptions(n=n, anomaly_rate=anomaly_rate, seed=seed, categories=chosen,
                               silent_rate=silent_rate, noise_rate=noise_rate)
        try:
            rows = generate(opts)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        write_jsonl(out_path, rows)
        kinds = Counter(r.get("anomaly_kind", "normal") for r in rows)
        click.echo(f"wrote {len(rows)} sequences to {out_path}: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))

    run(work)


@data.command("convert")
@click.option("--from", "source", required=True, type=click.Choice(["text", "loghub", "jsonl-records", "seed-json"]),
              help="What the input is (see above).")
@click.option("--to", "target", type=click.Choice(["sequences"]), default="sequences", show_default=True)
@click.option("--in", "in_path", required=True, help="Input file, or - for stdin.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Sequence JSONL to write.")
@click.option("--key-regex", help=r"Group lines by the first match (its `key` group if any), e.g. 'blk_-?\d+'.")
@click.option("--window", type=click.IntRange(1), help="Cut the lines into consecutive windows of this many lines instead.")
@click.option("--line-regex", help="text: regex with named groups key/timestamp/level/message/label.")
@click.option("--key-field", help="jsonl-records: the attribute that keys a sequence (default: trace id / key).")
@click.option("--key-labels", type=click.Path(dir_okay=False),
              help="CSV key,label with a header (e.g. loghub's HDFS anomaly_label.csv) labeling keyed sequences.")
@click.option("--max-lines", type=click.IntRange(1), help="With keys: at most this many lines per sequence (default: whole key).")
@click.option("--idle-s", type=click.FloatRange(0, min_open=True), help="With keys and timestamps: a gap this long starts a new sequence.")
@click.option("--lenient", is_flag=True, help="Replace invalid UTF-8 and skip unreadable lines instead of failing.")
def convert_cmd(source, target, in_path, out_path, key_regex, window, line_regex, key_field, key_labels, max_lines,
                idle_s, lenient):
    """Turn raw logs into sequence JSONL.

    \b
    text           plain lines; --key-regex or --window N (optional --key-labels CSV)
    loghub         line-labeled loghub logs (BGL, Thunderbird...): first column "-" normal, else anomalous;
                   also loghub *_structured.csv (Content, Label columns)
    jsonl-records  one JSON record a line; grouped by trace id/key, --key-field or --window
    seed-json      the original LogLLM project's JSON arrays
    """
    def work():
        from logllm_plugin.data.convert import ConvertOptions, convert
        from logllm_plugin.data.io import write_sequences

        opts = ConvertOptions(source=source, key_regex=key_regex, window=window, line_regex=line_regex,
                              key_field=key_field, key_labels=key_labels, max_lines=max_lines, idle_s=idle_s,
                              lenient=lenient)
        result = convert(in_path, opts)
        seqs = result.sequences
        written = write_sequences(out_path, seqs)
        anomalous = sum(1 for s in seqs if s.label == 1)
        unlabeled = sum(1 for s in seqs if s.label is None)
        lines = sum(len(s.lines) for s in seqs)
        click.echo(f"{in_path}: {result.report.summary()}", err=True)
        click.echo(f"wrote {written} sequences ({lines} lines; {anomalous} anomalous, {unlabeled} unlabeled) "
                   f"to {out_path}")
        if unlabeled:
            click.echo(f"note: {unlabeled} sequences have no label (train with labels, --key-labels, or "
                       "train small --normal-only)", err=True)

    run(work)


@data.command("split")
@click.option("--in", "in_path", required=True, help="Sequence JSONL/JSON to split.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Directory for train.jsonl, [valid.jsonl,] test.jsonl.")
@click.option("--by", type=click.Choice(["time", "random", "key"]), default="time", show_default=True,
              help="time: by the lines' leading timestamps (file order without them); key: whole keys per part.")
@click.option("--ratios", default="0.8,0.1,0.1", show_default=True, help="train,valid,test (or train,test).")
@click.option("--stratify", is_flag=True, help="Split each label class on its own: equal anomaly rates.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True, help="For --by random and --by key.")
def split_cmd(in_path, out_dir, by, ratios, stratify, seed):
    """Split labeled sequences into train/valid/test files (chronological by default)."""
    def work():
        from logllm_plugin.data.io import write_sequences
        from logllm_plugin.data.split import parse_ratios, split_sequences
        from logllm_plugin.readers import SEQUENCE_FORMATS, InputError, ReadReport, detect_format, read_sequence_file

        parsed = parse_ratios(ratios)
        fmt = detect_format(in_path) if in_path != "-" else None
        if fmt is not None and fmt not in SEQUENCE_FORMATS:
            raise InputError(f"{in_path} holds {fmt} input, not sequences: run `logllm-plugin data convert` first")
        report = ReadReport()
        sequences = list(read_sequence_file(in_path, fmt, report))
        if report.skipped_malformed or report.invalid_utf8_lines:
            raise InputError(f"{in_path}: {report.summary()}; fix the input (or convert it with --lenient) "
                             "before splitting, so no part silently misses sequences")
        result = split_sequences(sequences, parsed, by=by, stratify=stratify, seed=seed)
        for name, part in result.parts.items():
            path = Path(out_dir) / f"{name}.jsonl"
            write_sequences(path, part)
            anomalies = sum(1 for s in part if s.label == 1)
            click.echo(f"{name}: {len(part)} sequences ({anomalies} anomalous) -> {path}")
        click.echo(f"order: {result.ordered_by}", err=True)

    run(work)


@data.command("check")
@click.argument("paths", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--strict", is_flag=True, help="Exit non-zero on warnings too (invalid UTF-8, conflicts, leakage...).")
@click.option("--allow-unlabeled", is_flag=True, help="Unlabeled data (normal history) is a warning, not an error.")
def check_cmd(paths, as_json, strict, allow_unlabeled):
    """Report on sequence files before training; exit 1 on errors that make training meaningless.

    PATHS: one file (parts by its `split` field), several files (train.jsonl test.jsonl ...), or a
    directory of them. Reports counts, anomaly rate, lengths, duplicates, templates, undecodable
    lines, train/test leakage, and conflicting labels with the F1 ceiling they impose.
    """
    def work():
        from logllm_plugin.data.check import check

        result = check(list(paths), allow_unlabeled=allow_unlabeled)
        if as_json:
            click.echo(json.dumps(result.to_dict()))
        else:
            _print_check(result)
        if result.errors or (strict and result.warnings):
            click.get_current_context().exit(EXIT_FINDINGS)

    run(work)


def _print_check(result) -> None:
    s = result.summary
    click.echo(f"{'part':<12} {'seqs':>7} {'anomal.':>7} {'rate':>7} {'unlab.':>6} {'len p50/p90/max':>16} "
               f"{'dups':>6} {'tmpl':>5} {'distinct':>8}")
    for name, p in s["parts"].items():
        rate = "-" if p["anomaly_rate"] is None else f"{p['anomaly_rate']:.4f}"
        length = f"{p['length']['p50']:g}/{p['length']['p90']:g}/{p['length']['max']}"
        click.echo(f"{name:<12} {p['sequences']:>7} {p['anomalies']:>7} {rate:>7} {p['unlabeled']:>6} {length:>16} "
                   f"{p['duplicate_sequences']:>6} {p['templates']:>5} {p['distinct_template_sequences']:>8}")
    click.echo(f"templates (Drain3) over all parts: {s['templates']}")
    if "conflicts" in s:
        c = s["conflicts"]["template_ids"]
        if not c["conflicting_groups"]:
            click.echo(f"label conflicts in {s['conflicts']['part']}: none (F1 ceiling 1.0 for a template-only detector)")
        else:
            click.echo(f"label conflicts in {s['conflicts']['part']}: {c['anomalies_in_conflict']} of {c['anomalies']} "
                       f"anomalies share their template sequence with {c['normals_in_conflict']} normal sequences "
                       f"({c['conflicting_groups']} template sequences); F1 ceiling for a template-only detector "
                       f"{c['f1_ceiling']:.4f} (precision {c['ceiling_precision']:.4f}, "
                       f"recall {c['ceiling_recall']:.4f})")
    for name, leak in s.get("leakage", {}).get("parts", {}).items():
        click.echo(f"leakage {s['leakage']['train_part']} -> {name}: {leak['exact_copies_of_train']} exact copies, "
                   f"{leak['template_copies_of_train']} template copies ({leak['train_copy_has_other_label']} with "
                   f"the other label), {leak['templates_not_in_train']} templates not in {s['leakage']['train_part']}")
    for message in result.errors:
        click.echo(f"ERROR: {message}")
    for message in result.warnings:
        click.echo(f"warning: {message}")
    click.echo(f"{len(result.errors)} errors, {len(result.warnings)} warnings")


@data.command("llm-pairs")
@click.option("--in", "in_path", required=True, help="Labeled sequences (sequence JSONL/JSON); anomalies are used.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Chat JSONL to write.")
@click.option("--max-lines", type=click.IntRange(1), help="Most log lines shown in one prompt (default 60, as train llm).")
@click.option("--knowledge-base", type=click.Path(dir_okay=False),
              help="Knowledge base YAML whose suggestions become the targets' (default: the bundled one).")
@click.option("--context-lines", type=click.IntRange(0), default=20, show_default=True,
              help="Place each anomaly among normal lines of the data, up to this many lines in all (0: alone), as train llm does.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seed of the placement; train llm's --seed gives the same pairs.")
def llm_pairs_cmd(in_path, out_path, max_lines, knowledge_base, context_lines, seed):
    """Prompt/response pairs in the chat format `train llm` uses ({"messages": [system, user, assistant]})."""
    def work():
        from collections import Counter

        from logllm_plugin.data.io import write_jsonl
        from trainers.llm_pairs import chat_rows
        from logllm_plugin.readers import SEQUENCE_FORMATS, InputError, ReadReport, detect_format, read_sequence_file
        from trainers.llm_data import LLMTrainingError

        fmt = detect_format(in_path) if in_path != "-" else None
        if fmt is not None and fmt not in SEQUENCE_FORMATS:
            raise InputError(f"{in_path} holds {fmt} input, not sequences: run `logllm-plugin data convert` first")
        report = ReadReport()
        sequences = list(read_sequence_file(in_path, fmt, report))
        if report.skipped_malformed:
            raise InputError(f"{in_path}: {report.summary()}")
        unlabeled = sum(1 for s in sequences if s.label is None)
        if unlabeled == len(sequences):
            raise InputError(f"{in_path}: no sequence has a label; llm-pairs needs labeled anomalies (label 1)")
        try:
            rows = chat_rows(sequences, max_lines=max_lines, knowledge_base=knowledge_base,
                             context_lines=context_lines, seed=seed)
        except LLMTrainingError as exc:
            raise InputError(f"{in_path}: {exc}") from None
        write_jsonl(out_path, rows)
        categories = Counter(r["category"] for r in rows)
        click.echo(f"wrote {len(rows)} pairs to {out_path} from {len(sequences)} sequences "
                   f"({unlabeled} unlabeled skipped); categories: "
                   + ", ".join(f"{k} {v}" for k, v in categories.most_common()))

    run(work)
