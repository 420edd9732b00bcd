"""`logllm-plugin es setup`: mappings for the `logllm.*` fields, an ingest pipeline where the cluster
can run one, and the annotator's state index. Idempotent: a second run changes nothing and says so.

What is installed:
* component template `logllm-annotations` (the mappings), and an index template for the pattern
  composed of it, so new indexes get the fields typed (keyword/float/boolean/date);
* the same mappings put on the pattern's existing indexes (a template only applies to new ones);
* where every ingest node has the `set` processor: pipeline `logllm-annotations`, stamping
  `event.ingested` (the annotator's tailing order) and `logllm.sequence.key` from the key fields,
  made the default pipeline of new and existing indexes of the pattern;
* the state index (checkpoints and per-item failures of annotate/backfill).
"""
from __future__ import annotations

import fnmatch
import logging
import re
from dataclasses import dataclass, field
from typing import Sequence

from collectors.elastic.connection import ClusterClient, ClusterError
from collectors.elastic.fields import (ANNOTATION_FIELD_TYPES, ECS_FIELD_TYPES, EVENT_INGESTED, mapped_fields,
                                       nested_properties)
from collectors.annotations import SEQUENCE_KEY

logger = logging.getLogger(__name__)

COMPONENT_TEMPLATE = "logllm-annotations"
PIPELINE = "logllm-annotations"
STATE_INDEX = "logllm-annotator-state"
NEEDED_PROCESSORS = ("set",)

STATE_MAPPINGS = {
    "dynamic": False,
    "properties": {
        "kind": {"type": "keyword"}, "name": {"type": "keyword"}, "index": {"type": "keyword"},
        "doc_id": {"type": "keyword"}, "error": {"type": "text"}, "status": {"type": "integer"},
        "updated_at": {"type": "date"},
    },
}


@dataclass
class SetupReport:
    installed: list[str] = field(default_factory=list)  # created or changed
    unchanged: list[str] = field(default_factory=list)
    lacking: list[str] = field(default_factory=list)  # what the cluster could not do, and what follows
    warnings: list[str] = field(default_factory=list)
    pipeline: str | None = None

    def lines(self) -> list[str]:
        out = [f"installed: {x}" for x in self.installed] + [f"unchanged: {x}" for x in self.unchanged]
        out += [f"cluster lacks: {x}" for x in self.lacking] + [f"warning: {x}" for x in self.warnings]
        return out


def index_template_name(pattern: str) -> str:
    return "logllm-" + (re.sub(r"[^a-z0-9_-]+", "-", pattern.lower()).strip("-") or "all")


def pipeline_body(key_fields: Sequence[str]) -> dict:
    processors = [{"set": {"field": EVENT_INGESTED, "value": "{{{_ingest.timestamp}}}",
                           "description": "when the cluster received the document: the annotator tails on it"}}]
    if key_fields:
        processors.append({"set": {"field": SEQUENCE_KEY, "override": False, "ignore_empty_value": True,
                                   "value": "|".join("{{{%s}}}" % f for f in key_fields),
                                   "description": "sequence key the annotator groups by"}})
    return {"description": "logllm-plugin: stamp event.ingested and the sequence key", "processors": processors}


def setup_cluster(client: ClusterClient, pattern: str, key_fields: Sequence[str] = (), priority: int = 200) -> SetupReport:
    if not pattern or pattern.startswith(("-", "_")) or "," in pattern:
        raise ClusterError(f"index pattern must be one pattern such as logs-*, got {pattern!r}")
    report = SetupReport()
    raw = client.raw
    component = {"template": {"mappings": {"properties": nested_properties({**ECS_FIELD_TYPES, **ANNOTATION_FIELD_TYPES})}},
                 "_meta": {"managed_by": "logllm-plugin"}}
    _put_if_changed(report, f"component template {COMPONENT_TEMPLATE}",
                    lambda: _body(client, raw.cluster.get_component_template(name=COMPONENT_TEMPLATE))
                    ["component_templates"][0]["component_template"],
                    lambda: raw.cluster.put_component_template(name=COMPONENT_TEMPLATE, body=component), component)

    processors = client.ingest_processors()
    missing = [p for p in NEEDED_PROCESSORS if p not in processors]
    if missing:
        report.lacking.append(f"ingest processor(s) {', '.join(missing)} (ingest processors present: "
                              f"{len(processors)}): no pipeline installed; annotate tails on @timestamp with a "
                              "lateness window and computes sequence keys itself")
    else:
        body = pipeline_body(key_fields)
        _put_if_changed(report, f"ingest pipeline {PIPELINE}",
                        lambda: _body(client, raw.ingest.get_pipeline(id=PIPELINE))[PIPELINE],
                        lambda: raw.ingest.put_pipeline(id=PIPELINE, body=body), body)
        report.pipeline = PIPELINE

    name = index_template_name(pattern)
    template = {"index_patterns": [pattern], "priority": priority, "composed_of": [COMPONENT_TEMPLATE],
                "_meta": {"managed_by": "logllm-plugin"}}
    if report.pipeline:
        template["template"] = {"settings": {"index": {"default_pipeline": report.pipeline}}}
    _warn_about_shadowing(client, report, name, pattern, priority)
    _put_if_changed(report, f"index template {name} for {pattern} (priority {priority})",
                    lambda: _body(client, raw.indices.get_index_template(name=name))["index_templates"][0]["index_template"],
                    lambda: raw.indices.put_index_template(name=name, body=template), template)

    for index in client.matching_indices(pattern):
        _update_existing_index(client, report, index)

    if raw.indices.exists(index=STATE_INDEX):
        report.unchanged.append(f"state index {STATE_INDEX}")
    else:
        raw.indices.create(index=STATE_INDEX, body={"settings": {"number_of_replicas": 0}, "mappings": STATE_MAPPINGS})
        report.installed.append(f"state index {STATE_INDEX}")
    return report


def _body(client: ClusterClient, response):
    return response.body if client.backend == "elasticsearch" else response


def _contains(actual, wanted) -> bool:
    """`wanted` is a sub-document of what the cluster returned (it adds defaults and normalises)."""
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(k in actual and _contains(actual[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(actual, list) and len(actual) == len(wanted) and all(map(_contains, actual, wanted))
    return actual == wanted or str(actual) == str(wanted)


def _put_if_changed(report: SetupReport, what: str, get, put, wanted: dict) -> None:
    try:
        current = get()
    except Exception as exc:  # not found (404) is the usual case on a fresh cluster
        if getattr(exc, "status_code", None) not in (404, None) and getattr(exc, "status", None) != 404:
            raise
        current = None
    if current is not None and _contains(current, wanted):
        report.unchanged.append(what)
        return
    put()
    report.installed.append(what)


def _warn_about_shadowing(client: ClusterClient, report: SetupReport, name: str, pattern: str, priority: int) -> None:
    # Only the highest-priority index template applies to a new index: say when ours wins over the
    # user's (their mappings then need `composed_of: [logllm-annotations]`) or loses to it.
    templates = _body(client, client.raw.indices.get_index_template()).get("index_templates", [])
    for item in templates:
        other, body = item["name"], item["index_template"]
        if other == name or other.startswith("."):
            continue
        overlap = any(fnmatch.fnmatch(p, pattern) or fnmatch.fnmatch(pattern, p) for p in body.get("index_patterns", []))
        if not overlap:
            continue
        theirs = body.get("priority", 0)
        if COMPONENT_TEMPLATE in body.get("composed_of", []):
            continue
        if theirs >= priority:
            report.warnings.append(f"index template {other} (priority {theirs}) also matches {pattern} and wins: add "
                                   f"'{COMPONENT_TEMPLATE}' to its composed_of, or rerun with a higher --priority")
        else:
            report.warnings.append(f"index template {name} now shadows {other} (priority {theirs}) for {pattern}: "
                                   f"add '{COMPONENT_TEMPLATE}' to {other}'s composed_of and drop {name} if you "
                                   "need its settings")


def _update_existing_index(client: ClusterClient, report: SetupReport, index: str) -> None:
    raw = client.raw
    mapping = _body(client, raw.indices.get_mapping(index=index))[index]["mappings"]
    existing = mapped_fields(mapping.get("properties", {}))
    wanted = {f: spec for f, spec in {**ECS_FIELD_TYPES, **ANNOTATION_FIELD_TYPES}.items()}
    clashes = [f"{f} is {existing[f]}, not {spec['type']}" for f, spec in wanted.items()
               if f in existing and existing[f] != spec["type"]]
    if clashes:
        report.warnings.append(f"index {index}: {'; '.join(clashes)} (left as is)")
    todo = {f: spec for f, spec in wanted.items() if f not in existing}
    if todo:
        raw.indices.put_mapping(index=index, body={"properties": nested_properties(todo)})
        report.installed.append(f"mappings for {len(todo)} field(s) on existing index {index}")
    else:
        report.unchanged.append(f"mappings on existing index {index}")
    if report.pipeline:
        settings = _body(client, raw.indices.get_settings(index=index))[index]["settings"]["index"]
        current = settings.get("default_pipeline")
        if current == report.pipeline:
            report.unchanged.append(f"default pipeline of {index}")
        elif current and current != "_none":
            report.warnings.append(f"index {index} has default pipeline {current}: left as is (add a "
                                   f"'pipeline' processor calling {report.pipeline} to it)")
        else:
            raw.indices.put_settings(index=index, body={"index": {"default_pipeline": report.pipeline}})
            report.installed.append(f"default pipeline {report.pipeline} on existing index {index}")
