"""`logllm-plugin models list|promote|rollback` and `logllm-plugin feedback` (learning mode)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from logllm_plugin.cli import _load, _run, input_options, main, read_token_file


@main.group("models")
def models() -> None:
    """The versioned model store of a learner (serve --learn DIR): list, promote, roll back."""


def _store(directory: str):
    from logllm_plugin.learning.model_store import ModelStore

    if not (Path(directory) / "models").is_dir():
        raise click.ClickException(f"{directory} holds no model store (no models/ directory): "
                                   "it is made by `serve --learn DIR`")
    return ModelStore(directory, create=False)


@models.command("list")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False), help="The learner's DIR.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per version.")
def models_list_cmd(directory, as_json):
    """The versions kept, the current one marked, with the checks each passed."""
    def work():
        rows = _store(directory).describe()
        for row in rows:
            if as_json:
                click.echo(json.dumps(row))
                continue
            c = row.get("checks") or {}
            figures = (f"flag rate {c['flag_rate']:.1%}, injected recall {c['injected_recall']:.1%}, "
                       f"trained on {row.get('trained_on')}") if c else ""
            click.echo(f"{'*' if row['current'] else ' '} {row['version']}  {figures}")
        if not rows and not as_json:
            click.echo("no model version yet (the learner is still learning)")

    _run(work)


@models.command("promote")
@click.argument("version")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False), help="The learner's DIR.")
def models_promote_cmd(version, directory):
    """Make VERSION current: the learner and its followers serve it within one poll interval."""
    _run(lambda: (_store(directory).set_current(version), click.echo(f"current: {version}")))


@models.command("rollback")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False), help="The learner's DIR.")
def models_rollback_cmd(directory):
    """Make the version before the current one current."""
    _run(lambda: click.echo(f"current: {_store(directory).rollback()}"))


@main.command("feedback")
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
        import grpc

        from logllm_plugin.client import InferenceClient
        from logllm_plugin.sequencer import SequencerConfig

        token = read_token_file(token_file)
        sequencer = SequencerConfig(max_lines=max_lines) if max_lines else None
        sequences = _load(input_path, fmt=fmt, line_regex=line_regex, key_regex=key_regex, sequencer=sequencer)
        if not sequences:
            raise click.ClickException(f"{input_path} holds no sequence")
        with InferenceClient(server, token=token, tls_ca=tls_ca, timeout_s=timeout_s) as client:
            try:
                result = client.feedback([s.lines for s in sequences], label)
            except grpc.RpcError as exc:
                raise click.ClickException(f"server {server}: {exc.code().name}: {exc.details()}") from None
        click.echo(json.dumps(result))

    _run(work)
