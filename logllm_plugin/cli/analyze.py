"""`logllm-plugin analyze`: explanations for the anomalous sequences of an input."""
from __future__ import annotations

import json

import click

from logllm_plugin.cli.common import (analysis_overrides, config_option, input_options, load_config, load_and_report,
                                      read_token_file, run, server_errors)

@click.command("analyze")
@click.option("--model", "model_dir", help="Detector model directory (default: the embedded model).")
@click.option("--input", "input_path", required=True, help="Log input: a file path or - for stdin.")
@config_option
@click.option("--llm", "llm_dir", help="Explain with this local Qwen (chat) model directory instead of the knowledge base.")
@click.option("--adapter", "adapter_dir", help="peft adapter for --llm (from `logllm-plugin train llm`).")
@click.option("--server", help="Detect and explain on a running server HOST:PORT.")
@click.option("--token-file", type=click.Path(dir_okay=False), help="With --server: file holding the bearer token.")
@click.option("--tls-ca", type=click.Path(dir_okay=False), help="With --server: PEM CA of the server certificate.")
@click.option("--threads", type=click.IntRange(1, 256), help="torch threads for the local models (default: all cores).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per anomalous sequence (default on a pipe).")
@input_options
def analyze_cmd(model_dir, input_path, config_path, llm_dir, adapter_dir, server, token_file, tls_ca, threads,
                as_json, fmt, line_regex, key_regex, max_lines):
    """Explain each anomalous sequence: category, summary, suggestion, evidence lines (personal data masked)."""
    def work():
        import sys

        from logllm_plugin.analyzers.qwen import prefer_passive_openmp

        prefer_passive_openmp()  # before torch loads: see its docstring
        overrides = {**analysis_overrides(llm_dir, adapter_dir), "sequencer": {"max_lines": max_lines}}
        if threads:
            overrides.setdefault("analysis", {})["threads"] = threads
        config = load_config(config_path, overrides)
        sequences = load_and_report(input_path, fmt=fmt, line_regex=line_regex, key_regex=key_regex, sequencer=config.sequencer)
        if server:
            if model_dir or llm_dir:
                raise click.UsageError("--server uses the server's detector and analyzer: drop --model/--llm")
            rows = _remote(server, token_file, tls_ca, sequences)
        else:
            rows = _local(model_dir, config, sequences, threads)
        pretty = not as_json and sys.stdout.isatty()
        for row in rows:
            click.echo(_pretty(row) if pretty else json.dumps(row))
        click.echo(f"{len(rows)} anomalous sequence(s) explained", err=True)

    run(work)


def _local(model_dir, config, sequences, threads=None) -> list[dict]:
    from logllm_plugin.analyzers.service import build_analysis_service
    from logllm_plugin.detector import load_detector

    detector = load_detector(model_dir)
    detector.threads = threads
    service = build_analysis_service(config.analysis, signature=detector.store_ids, encoder=detector.encoder)
    rows = []
    for start in range(0, len(sequences), 512):
        chunk = sequences[start : start + 512]
        verdicts = detector.detect(chunk)
        anomalous = [(s, v) for s, v in zip(chunk, verdicts) if v.label == "anomalous"]
        explanations = service.explain([s.lines for s, _ in anomalous], [v for _, v in anomalous])
        rows.extend({"id": v.id, "score": round(v.score, 6), **e.to_dict()} for (_, v), e in zip(anomalous, explanations))
    return rows


def _remote(server, token_file, tls_ca, sequences) -> list[dict]:
    from logllm_plugin.client import InferenceClient

    token = read_token_file(token_file)
    rows = []
    with server_errors(server), InferenceClient(server, token=token, tls_ca=tls_ca) as client:
        verdicts = client.detect(sequences)
        for seq, verdict in zip(sequences, verdicts):
            if verdict.label == "anomalous":
                rows.append({"id": verdict.id, "score": round(verdict.score, 6), **client.analyze(seq.lines, verdict)})
    return rows


def _pretty(row: dict) -> str:
    lines = [f"{row['id']}  [{row['category']}] score {row['score']:.3f}  ({row['analyzer']}, {row['status']})",
             f"  what happened: {row['summary']}", f"  what to do:    {row['suggestion']}"]
    lines += [f"  line {e['index']:>3}: {e['line']}" for e in row["evidence"]]
    return "\n".join(lines) + "\n"
