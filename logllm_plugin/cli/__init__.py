"""`logllm-plugin` command line. The only place that configures logging or prints.

One module per command group (or top-level command), named after it; what they share is in
`common`. This module is the registry: it builds `main` and attaches every command explicitly,
and no command module imports it back. Run the CLI as `logllm-plugin` or `python -m logllm_plugin`.
Heavy modules (torch, transformers, trainers) are imported inside commands so `--help` is fast.
"""
from __future__ import annotations

import click

from logllm_plugin import __version__
from logllm_plugin.cli import (analyze, bench, data, detect, dev, es, evaluate, feedback, kibana, models, otel,
                               serve, train)
from logllm_plugin.cli.common import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="logllm-plugin")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Sequence-level log anomaly detection with explanations, for OTel and Elasticsearch stacks."""
    setup_logging(verbose)


COMMANDS = (
    train.train,           # train small | llm
    evaluate.eval_cmd,     # eval
    detect.detect_cmd,     # detect
    analyze.analyze_cmd,   # analyze
    serve.serve_cmd,       # serve
    feedback.feedback_cmd,  # feedback
    models.models,         # models list | promote | rollback
    data.data,             # data generate | convert | split | check | llm-pairs
    es.es,                 # es setup | annotate | feedback | backfill
    kibana.kibana,         # kibana export | import
    otel.otel,             # otel bridge
    bench.bench,           # bench server | pipeline | annotate | collector | bridge | learn | analyze | explain
    dev.dev,               # dev tiny-qwen | small-llm
)
for command in COMMANDS:
    main.add_command(command)
