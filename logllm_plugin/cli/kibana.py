"""`logllm-plugin kibana export|import`: the saved objects that show the annotations in Kibana."""
from __future__ import annotations

import json
from pathlib import Path

import click

@click.group("kibana")
def kibana() -> None:
    """Kibana saved objects: a data view, a saved search, a Lens chart and a dashboard of anomalies."""


@kibana.command("export")
@click.option("--index", "index", default="logs-*", show_default=True, help="Index pattern of the data view.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="NDJSON file to write.")
def kibana_export_cmd(index, out_path):
    """Write the saved objects as NDJSON (Stack Management → Saved objects → Import takes it too)."""
    from collectors.kibana.saved_objects import saved_objects, to_ndjson

    objects = saved_objects(index)
    Path(out_path).write_text(to_ndjson(objects), encoding="utf-8")
    click.echo(f"wrote {len(objects)} saved objects for {index} to {out_path}")


@kibana.command("import")
@click.option("--url", required=True, help="Kibana URL, e.g. http://127.0.0.1:5601.")
@click.option("--index", "index", default="logs-*", show_default=True, help="Index pattern of the data view.")
@click.option("--file", "in_path", type=click.Path(dir_okay=False, exists=True),
              help="NDJSON to import (default: generate it for --index).")
@click.option("--space", help="Kibana space id (default: the default space).")
@click.option("--ca-cert", type=click.Path(dir_okay=False, exists=True), help="PEM CA for https.")
def kibana_import_cmd(url, index, in_path, space, ca_cert):
    """Import the saved objects through Kibana's saved-objects API (overwriting earlier copies).

    Credentials from LOGLLM_KIBANA_API_KEY, or LOGLLM_KIBANA_USERNAME + LOGLLM_KIBANA_PASSWORD.
    """
    import os

    from collectors.elastic.connection import ClusterError, ConnectionSettings
    from collectors.kibana.saved_objects import import_saved_objects, saved_objects, to_ndjson

    try:
        auth = ConnectionSettings(url=url, api_key=os.environ.get("LOGLLM_KIBANA_API_KEY") or None,
                                  username=os.environ.get("LOGLLM_KIBANA_USERNAME") or None,
                                  password=os.environ.get("LOGLLM_KIBANA_PASSWORD") or None)
        ndjson = Path(in_path).read_text(encoding="utf-8") if in_path else to_ndjson(saved_objects(index))
        result = import_saved_objects(url, ndjson, headers=auth.auth_headers(), ca_certs=ca_cert, space=space)
    except (ClusterError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    if not result.get("success", False):
        raise click.ClickException(f"Kibana refused some objects: {json.dumps(result.get('errors', []))[:2000]}")
    click.echo(f"imported {result.get('successCount', 0)} saved objects into {url}")
