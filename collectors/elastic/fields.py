"""Index mappings for the `logllm.*` annotation fields (DESIGN §3) and reading fields from documents."""
from __future__ import annotations

from typing import Any, Optional

from collectors.annotations import (CATEGORY, CLOSED_BY, EVIDENCE, FAMILIARITY, LABEL, MODEL_VERSION, SCORE, SEQUENCE_ID,
                                         SEQUENCE_KEY, SEQUENCE_POSITION, STATUS, SUGGESTION, SUMMARY, SUPPRESSED)

# When the annotator wrote the document: with `_version` it shows a document was annotated once.
ANNOTATED_AT = "logllm.annotated_at"
EVENT_INGESTED = "event.ingested"
TIMESTAMP = "@timestamp"

ANNOTATION_FIELD_TYPES: dict[str, dict[str, Any]] = {
    SCORE: {"type": "float"},
    LABEL: {"type": "keyword"},
    CATEGORY: {"type": "keyword"},
    SEQUENCE_ID: {"type": "keyword"},
    SEQUENCE_KEY: {"type": "keyword"},
    SEQUENCE_POSITION: {"type": "integer"},
    EVIDENCE: {"type": "boolean"},
    SUMMARY: {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}}},
    SUGGESTION: {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 1024}}},
    MODEL_VERSION: {"type": "keyword"},
    STATUS: {"type": "keyword"},
    FAMILIARITY: {"type": "float"},
    SUPPRESSED: {"type": "boolean"},
    CLOSED_BY: {"type": "keyword"},
    ANNOTATED_AT: {"type": "date"},
}

# ECS fields the annotator reads or the pipeline stamps; mapped only where the index lacks them.
ECS_FIELD_TYPES: dict[str, dict[str, Any]] = {
    TIMESTAMP: {"type": "date"},
    EVENT_INGESTED: {"type": "date"},
    "message": {"type": "text"},
}


def nested_properties(flat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{"a.b.c": {...}} → {"a": {"properties": {"b": {"properties": {"c": {...}}}}}} (mapping form)."""
    root: dict[str, Any] = {}
    for dotted, spec in flat.items():
        node = root
        parts = dotted.split(".") if not dotted.startswith("@") else [dotted]
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[parts[-1]] = dict(spec)
    return root


def annotation_mappings() -> dict[str, Any]:
    return {"properties": nested_properties({**ECS_FIELD_TYPES, **ANNOTATION_FIELD_TYPES})}


def mapped_fields(properties: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten mapping properties to {"a.b.c": type}, sub-fields (a.b.c.keyword) included."""
    out: dict[str, str] = {}
    for name, spec in properties.items():
        full = f"{prefix}{name}"
        if "properties" in spec:
            out.update(mapped_fields(spec["properties"], full + "."))
            continue
        out[full] = spec.get("type", "object")
        for sub, sub_spec in (spec.get("fields") or {}).items():
            out[f"{full}.{sub}"] = sub_spec.get("type", "object")
    return out


def get_field(source: dict[str, Any], dotted: str) -> Optional[Any]:
    """A field of a document `_source`, written either nested ({"a": {"b": 1}}) or flat ({"a.b": 1})."""
    if dotted in source:
        return source[dotted]
    node: Any = source
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, dict):
            return None
        rest = ".".join(parts[i:])
        if rest in node:
            return node[rest]
        if part not in node:
            return None
        node = node[part]
    return node
