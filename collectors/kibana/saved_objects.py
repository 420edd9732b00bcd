"""Kibana 8 saved objects for the annotated indexes, as NDJSON, and their import (DESIGN §5).

Five objects, linked by references (Kibana resolves them on import):
* a data view on the index pattern, time field `@timestamp`;
* a saved search "logllm: anomalous records" filtered to `logllm.anomaly.label : "anomalous"`, with the
  columns message, label, score, category, explanation summary;
* a Lens bar chart of anomalous records over time, with a query-annotation layer marking where each
  anomalous sequence starts (position 0), its category and summary in the tooltip;
* a dashboard holding the chart above the saved search;
* a saved search "logllm: still learning" of records scored while a learner had no model yet
  (`logllm.status : "learning"`), so an operator sees what is not covered yet.

Kibana cannot run on the development machine (no distribution it can fetch), so the shapes follow
Kibana 8's saved-object formats and tests check them structurally (ids unique, references resolve,
every field exists in the index template).
"""
from __future__ import annotations

import json
import logging
import mimetypes
import uuid
from typing import Any, Iterable

from collectors.annotations import (CATEGORY, FAMILIARITY, LABEL, MODEL_VERSION, SCORE, SEQUENCE_POSITION,
                                         STATUS, SUMMARY, SUPPRESSED)

logger = logging.getLogger(__name__)

TIME_FIELD = "@timestamp"
ANOMALOUS_KQL = f'{LABEL} : "anomalous"'
LEARNING_KQL = f'{STATUS} : "learning"'
SEARCH_COLUMNS = ["message", LABEL, SCORE, CATEGORY, SUMMARY, FAMILIARITY, SUPPRESSED, MODEL_VERSION]
LEARNING_COLUMNS = ["message", STATUS, LABEL]


def _ids(index_pattern: str) -> dict[str, str]:
    # Stable per pattern: re-exporting and re-importing overwrites instead of duplicating.
    def make(kind: str) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"logllm-plugin/{kind}/{index_pattern}"))

    return {k: make(k) for k in ("data_view", "search", "lens", "dashboard", "learning_search")}


def saved_objects(index_pattern: str = "logs-*") -> list[dict[str, Any]]:
    ids = _ids(index_pattern)
    data_view = {
        "type": "index-pattern", "id": ids["data_view"], "managed": False,
        "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.0.0",
        "attributes": {"title": index_pattern, "name": f"logllm: {index_pattern}", "timeFieldName": TIME_FIELD},
        "references": [],
    }
    search = _saved_search(ids["search"], ids["data_view"], "logllm: anomalous records",
                           "Records in anomalous sequences, with the detector's score, category, explanation, "
                           "familiarity and whether an operator's feedback decided the verdict.",
                           ANOMALOUS_KQL, SEARCH_COLUMNS)
    learning_search = _saved_search(ids["learning_search"], ids["data_view"], "logllm: still learning",
                                    "Records scored while the learner had no model of this traffic yet.",
                                    LEARNING_KQL, LEARNING_COLUMNS)
    lens = {
        "type": "lens", "id": ids["lens"], "managed": False,
        "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.9.0",
        "attributes": {
            "title": "logllm: anomalous records over time", "description": "", "visualizationType": "lnsXY",
            "state": {
                "datasourceStates": {"formBased": {"layers": {"data": {
                    "columnOrder": ["time", "count"],
                    "columns": {
                        "time": {"label": TIME_FIELD, "dataType": "date", "operationType": "date_histogram",
                                 "sourceField": TIME_FIELD, "isBucketed": True, "scale": "interval",
                                 "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False}},
                        "count": {"label": "Anomalous records", "dataType": "number", "operationType": "count",
                                  "sourceField": "___records___", "isBucketed": False, "scale": "ratio",
                                  "params": {"emptyAsNull": True}},
                    },
                    "incompleteColumns": {}}}}},
                "visualization": {
                    "preferredSeriesType": "bar_stacked", "legend": {"isVisible": True, "position": "right"},
                    "valueLabels": "hide",
                    "layers": [
                        {"layerId": "data", "layerType": "data", "seriesType": "bar_stacked", "xAccessor": "time",
                         "accessors": ["count"]},
                        {"layerId": "incidents", "layerType": "annotations", "ignoreGlobalFilters": True,
                         "indexPatternId": ids["data_view"],
                         "annotations": [{"id": "anomalous-sequence-start", "type": "query",
                                          "label": "anomalous sequence starts", "key": {"type": "point_in_time"},
                                          "timeField": TIME_FIELD, "color": "#E7664C", "icon": "alert",
                                          "filter": {"type": "kibana_query", "language": "kuery",
                                                     "query": f"{ANOMALOUS_KQL} and {SEQUENCE_POSITION} : 0"},
                                          "extraFields": [CATEGORY, SUMMARY]}]},
                    ],
                },
                "query": {"query": ANOMALOUS_KQL, "language": "kuery"},
                "filters": [], "internalReferences": [], "adHocDataViews": {},
            },
        },
        "references": [
            {"type": "index-pattern", "id": ids["data_view"], "name": "indexpattern-datasource-layer-data"},
            {"type": "index-pattern", "id": ids["data_view"], "name": "xy-visualization-layer-incidents"},
        ],
    }
    panels = [
        {"type": "lens", "panelIndex": "chart", "gridData": {"x": 0, "y": 0, "w": 48, "h": 14, "i": "chart"},
         "embeddableConfig": {"enhancements": {}}, "panelRefName": "panel_chart"},
        {"type": "search", "panelIndex": "records", "gridData": {"x": 0, "y": 14, "w": 48, "h": 20, "i": "records"},
         "embeddableConfig": {"enhancements": {}}, "panelRefName": "panel_records"},
    ]
    dashboard = {
        "type": "dashboard", "id": ids["dashboard"], "managed": False,
        "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.9.0",
        "attributes": {
            "title": f"logllm: anomalies in {index_pattern}", "description": "Anomalous log sequences found by "
            "logllm-plugin, with explanations.", "timeRestore": False, "version": 1,
            "panelsJSON": json.dumps(panels), "optionsJSON": json.dumps({"useMargins": True, "syncColors": False,
                                                                         "hidePanelTitles": False}),
            "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps({"query": {"query": "", "language": "kuery"},
                                                                      "filter": []})},
        },
        "references": [{"name": "chart:panel_chart", "type": "lens", "id": ids["lens"]},
                       {"name": "records:panel_records", "type": "search", "id": ids["search"]}],
    }
    return [data_view, search, lens, dashboard, learning_search]


def _saved_search(object_id: str, data_view_id: str, title: str, description: str, kql: str,
                  columns: list[str]) -> dict[str, Any]:
    source = {"query": {"query": kql, "language": "kuery"}, "filter": [],
              "indexRefName": "kibanaSavedObjectMeta.searchSourceJSON.index"}
    return {
        "type": "search", "id": object_id, "managed": False,
        "coreMigrationVersion": "8.8.0", "typeMigrationVersion": "8.0.0",
        "attributes": {"title": title, "description": description, "columns": columns,
                       "sort": [[TIME_FIELD, "desc"]], "grid": {}, "hideChart": False,
                       "kibanaSavedObjectMeta": {"searchSourceJSON": json.dumps(source)}},
        "references": [{"name": "kibanaSavedObjectMeta.searchSourceJSON.index", "type": "index-pattern",
                        "id": data_view_id}],
    }


def to_ndjson(objects: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(obj, separators=(",", ":")) + "\n" for obj in objects)


def import_saved_objects(kibana_url: str, ndjson: str, *, headers: dict[str, str], ca_certs: str | None = None,
                         space: str | None = None, timeout_s: float = 60.0) -> dict[str, Any]:
    """POST the NDJSON to Kibana's saved-objects import API (overwrite) and return its JSON answer."""
    import ssl
    import urllib.error
    import urllib.request

    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"logllm.ndjson\"\r\n"
            f"Content-Type: {mimetypes.types_map.get('.json', 'application/json')}\r\n\r\n").encode()
    body += ndjson.encode() + f"\r\n--{boundary}--\r\n".encode()
    base = kibana_url.rstrip("/") + (f"/s/{space}" if space else "")
    request = urllib.request.Request(f"{base}/api/saved_objects/_import?overwrite=true", data=body, method="POST",
                                     headers={"kbn-xsrf": "logllm-plugin",
                                              "Content-Type": f"multipart/form-data; boundary={boundary}", **headers})
    context = ssl.create_default_context(cafile=ca_certs) if base.startswith("https://") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode(errors="replace")
        raise RuntimeError(f"Kibana import failed: HTTP {exc.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"Kibana at {kibana_url} unreachable: {getattr(exc, 'reason', exc)}") from None
