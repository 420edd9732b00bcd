"""`train small --from-es ...`: options that read training sequences from an Elasticsearch index.

The Elasticsearch client is imported only when --from-es is given.
"""
from __future__ import annotations

import functools

import click

_OPTIONS = [
    click.option("--from-es", "hist_url", help="Read training sequences from this Elasticsearch/OpenSearch URL."),
    click.option("--index", "hist_index", help="With --from-es: index pattern."),
    click.option("--query", "hist_query", help="With --from-es: a query clause as JSON, e.g. "
                 "'{\"term\": {\"service.name\": \"api\"}}'."),
    click.option("--from", "hist_from", help="With --from-es: start time (ISO 8601 or epoch ms)."),
    click.option("--to", "hist_to", help="With --from-es: end time, exclusive."),
    click.option("--key-field", "hist_key_fields", multiple=True, help="With --from-es: field(s) keying a sequence."),
    click.option("--label-field", "hist_label_field", help="With --from-es: field marking anomalous lines."),
    click.option("--message-field", "hist_message_field", default="message", show_default=True,
                 help="With --from-es: the log line."),
    click.option("--time-field", "hist_time_field", default="@timestamp", show_default=True,
                 help="With --from-es: order and range field."),
]


def history_options(fn):
    """Adds the --from-es options; the command receives them as one dict `history`."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        history = {name[len("hist_"):]: kwargs.pop(name) for name in list(kwargs) if name.startswith("hist_")}
        return fn(*args, history=history, **kwargs)

    for option in reversed(_OPTIONS):
        wrapper = option(wrapper)
    return wrapper


def load_history(history: dict, sequencer, normal_only: bool):
    """Sequences from the cluster, or None when --from-es was not given."""
    if not history.get("url"):
        return None
    if not history.get("index") or not history.get("key_fields"):
        raise click.UsageError("--from-es needs --index and at least one --key-field")
    if bool(history.get("label_field")) == bool(normal_only):
        raise click.UsageError("--from-es needs exactly one of --label-field F or --normal-only")
    from collectors.elastic.backfill import parse_time_ms
    from collectors.elastic.connection import ClusterError, connect
    from collectors.elastic.history import HistoryError, HistoryQuery, read_history

    try:
        spec = HistoryQuery(index=history["index"], key_fields=tuple(history["key_fields"]),
                            message_field=history["message_field"], time_field=history["time_field"],
                            query_json=history.get("query"),
                            from_ms=parse_time_ms(history["from"]) if history.get("from") else None,
                            to_ms=parse_time_ms(history["to"]) if history.get("to") else None,
                            label_field=history.get("label_field"))
        client = connect(history["url"])
        sequences = read_history(client, spec, sequencer)
    except (ClusterError, HistoryError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    labeled = sum(s.label == 1 for s in sequences)
    click.echo(f"train: {history['url']} {history['index']}: {len(sequences)} sequences ({labeled} anomalous)", err=True)
    return sequences
