"""Kibana saved objects: the shapes Kibana 8 imports (Kibana itself cannot run here)."""
from __future__ import annotations

import http.server
import json
import re
import threading

from click.testing import CliRunner

from collectors.elastic.fields import annotation_mappings, mapped_fields
from collectors.kibana.saved_objects import saved_objects, to_ndjson
from logllm_plugin.cli import main

KQL_FIELD = re.compile(r"([A-Za-z@_][\w.@]*)\s*:")


def exported(tmp_path, index="logs-*"):
    out = tmp_path / "objects.ndjson"
    result = CliRunner().invoke(main, ["kibana", "export", "--index", index, "--out", str(out)])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in out.read_text().splitlines()]


def fields_used(obj) -> set[str]:
    """Every field name a saved object refers to: columns, sort, time fields, Lens columns, KQL queries."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("sourceField", "timeField", "timeFieldName") and value != "___records___":
                    found.add(value)
                elif key in ("columns", "extraFields") and isinstance(value, list) and all(isinstance(v, str) for v in value):
                    found.update(value)
                elif key == "query" and isinstance(value, str):
                    found.update(KQL_FIELD.findall(value))
                elif key == "sort" and isinstance(value, list):
                    found.update(pair[0] for pair in value)
                elif key.endswith("JSON") and isinstance(value, str):
                    walk(json.loads(value))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(obj["attributes"])
    return found


def test_export_writes_one_object_per_line_with_unique_ids_of_the_kibana_8_types(tmp_path):
    objects = exported(tmp_path)
    assert [o["type"] for o in objects] == ["index-pattern", "search", "lens", "dashboard", "search"]
    assert len({o["id"] for o in objects}) == len(objects)
    assert all(o["coreMigrationVersion"].startswith("8.") and o["attributes"]["title"] for o in objects)
    assert objects[0]["attributes"]["title"] == "logs-*" and objects[0]["attributes"]["timeFieldName"] == "@timestamp"
    other = exported(tmp_path, "app-*")
    assert {o["id"] for o in other}.isdisjoint({o["id"] for o in objects}), "two patterns must not overwrite each other"
    assert [o["id"] for o in exported(tmp_path)] == [o["id"] for o in objects], "re-export must overwrite, not add"


def test_every_reference_resolves_to_an_exported_object_and_every_ref_name_is_used(tmp_path):
    objects = exported(tmp_path)
    by_key = {(o["type"], o["id"]) for o in objects}
    for obj in objects:
        names = [r["name"] for r in obj["references"]]
        assert len(names) == len(set(names)), obj["type"]
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_key, f"{obj['type']} refers to a missing {ref}"
    search = objects[1]
    source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["indexRefName"] in [r["name"] for r in search["references"]]
    dashboard = objects[3]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    ref_names = {r["name"] for r in dashboard["references"]}
    assert {f"{p['panelIndex']}:{p['panelRefName']}" for p in panels} == ref_names
    assert len({p["panelIndex"] for p in panels}) == len(panels)
    lens = objects[2]
    layers = lens["attributes"]["state"]["visualization"]["layers"]
    lens_refs = {r["name"] for r in lens["references"]}
    for layer in layers:
        expected = ("indexpattern-datasource-layer-" if layer["layerType"] == "data" else "xy-visualization-layer-")
        assert expected + layer["layerId"] in lens_refs


def test_every_field_the_views_use_exists_in_the_index_template(tmp_path):
    template_fields = mapped_fields(annotation_mappings()["properties"])
    for obj in exported(tmp_path):
        used = fields_used(obj)
        missing = sorted(f for f in used if f not in template_fields)
        assert not missing, f"{obj['type']} uses fields the template does not map: {missing}"
    search = exported(tmp_path)[1]
    assert {"logllm.anomaly.label", "logllm.anomaly.score", "logllm.anomaly.category",
            "logllm.explanation.summary", "logllm.sequence.familiarity", "logllm.suppressed",
            "logllm.model.version"} <= set(search["attributes"]["columns"])


def test_a_saved_search_shows_what_is_still_being_learned(tmp_path):
    learning = [o for o in exported(tmp_path) if o["attributes"].get("title") == "logllm: still learning"]
    assert len(learning) == 1
    source = json.loads(learning[0]["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["query"]["query"] == 'logllm.status : "learning"'


class _FakeKibana(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), body))
        ok = self.headers.get("kbn-xsrf") and b'filename="logllm.ndjson"' in body
        count = body.count(b'"coreMigrationVersion"')
        payload = json.dumps({"success": bool(ok), "successCount": count if ok else 0}).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def test_import_posts_the_ndjson_to_the_saved_objects_api_with_the_xsrf_header(monkeypatch):
    handler = type("Kibana", (_FakeKibana,), {"received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("LOGLLM_KIBANA_API_KEY", "c2VjcmV0LWtleQ==")
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = CliRunner().invoke(main, ["kibana", "import", "--url", url, "--index", "logs-*", "--space", "ops"])
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert "imported 5 saved objects" in result.output and "c2VjcmV0" not in result.output
    path, headers, body = handler.received[0]
    assert path == "/s/ops/api/saved_objects/_import?overwrite=true"
    assert headers["Authorization"] == "ApiKey c2VjcmV0LWtleQ=="
    assert to_ndjson(saved_objects("logs-*")).encode() in body
