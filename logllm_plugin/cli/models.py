"""`logllm-plugin models list|promote|rollback`: the versioned model store of a learner."""
from __future__ import annotations

import json
from pathlib import Path

import click

from logllm_plugin.cli.common import run

@click.group("models")
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

    run(work)


@models.command("promote")
@click.argument("version")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False), help="The learner's DIR.")
def models_promote_cmd(version, directory):
    """Make VERSION current: the learner and its followers serve it within one poll interval."""
    run(lambda: (_store(directory).set_current(version), click.echo(f"current: {version}")))


@models.command("rollback")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False), help="The learner's DIR.")
def models_rollback_cmd(directory):
    """Make the version before the current one current."""
    run(lambda: click.echo(f"current: {_store(directory).rollback()}"))
