"""`logllm-plugin feedback`: correct a learning server's verdicts (learning mode)."""
from __future__ import annotations

import json

import click

from logllm_plugin.cli.common import input_options, load_and_report, read_token_file, run, server_errors

@click.command("feedback")
@click.option("--server", required=True, help="The learning server HOST:PORT (serve --learn).")
@click.option("--input", "input_path", required=True, help="The sequences as they were scored (any format detect reads).")
@click.option("--as", "label", required=True, type=click.Choice(["normal", "anomalous"]),
              help="What they really are.")
@click.option("--token-file", type=click.Path(dir_okay=False), help="File holding the bearer token.")
@click.option("--tls-ca", type=click.Path(dir_okay=False), help="PEM CA that signed the server's certificate.")
@click.option("--timeout-s", type=click.FloatRange(min=0.001), default=30.0, show_default=True)
@input_options
def feedback_cmd(server, input_path, label, token_file, tls_ca, timeout_s, fmt, line_regex, key_regex, max_lines):
    """Correct verdicts: the same sequences are answered with LABEL at once, and train the next model."""
    def work():
        from logllm_plugin.client import InferenceClient
        from logllm_plugin.sequencer import SequencerConfig

        token = read_token_file(token_file)
        sequencer = SequencerConfig(max_lines=max_lines) if max_lines else None
        sequences = load_and_report(input_path, fmt=fmt, line_regex=line_regex, key_regex=key_regex, sequencer=sequencer)
        if not sequences:
            raise click.ClickException(f"{input_path} holds no sequence")
        with server_errors(server), InferenceClient(server, token=token, tls_ca=tls_ca, timeout_s=timeout_s) as client:
            result = client.feedback([s.lines for s in sequences], label)
        click.echo(json.dumps(result))

    run(work)
