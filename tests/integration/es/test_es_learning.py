"""`es annotate --learn DIR` against a real Elasticsearch: it learns the index's normal from the
documents already there, then annotates with the model it learned."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from logllm_plugin.data.generate import GenerateOptions, generate
from tests.conftest import REPO
from tests.integration.es.conftest import T0_MS, all_hits, index_documents

pytestmark = [pytest.mark.elasticsearch, pytest.mark.slow]


def _documents(n: int) -> tuple[list[dict], dict[str, int]]:
    rows = generate(GenerateOptions(n=n, seed=8, anomaly_rate=0.05, noise_rate=0.1))
    docs, labels, t = [], {}, 0
    for row in rows:
        labels[row["id"]] = row["label"]
        for line in row["lines"]:
            docs.append({"@timestamp": T0_MS + t * 10, "trace_id": row["id"], "message": line})
            t += 1
    return docs, labels


def test_annotate_learns_from_the_index_history_then_annotates_every_document_once(es_client, elasticsearch_url,
                                                                                    tmp_path):
    index = "learn-from-history"
    docs, labels = _documents(900)
    index_documents(es_client, index, docs)
    env = {**os.environ, "LOGLLM_LEARNING__MIN_SEQUENCES": "800"}
    proc = subprocess.run([sys.executable, "-m", "logllm_plugin", "es", "annotate", "--url", elasticsearch_url,
                           "--index", index, "--key-field", "trace_id", "--once", "--json", "--threads", "1",
                           "--learn", str(tmp_path / "learn")], cwd=REPO, capture_output=True, text=True,
                          timeout=1200, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    learned = json.loads(next(x for x in proc.stderr.splitlines() if x.startswith("learning: "))[len("learning: "):])
    assert learned["bootstrapped"] and learned["version"] == "v000001", learned
    hits = all_hits(es_client, index)
    assert len(hits) == len(docs) and all(h["_version"] == 2 for h in hits)
    notes = [h["_source"]["logllm"] for h in hits]
    assert {n["status"] for n in notes} == {"ok"}
    assert {n["model"]["version"] for n in notes} == {"learn/v000001"}
    assert all(0.0 <= n["sequence"]["familiarity"] <= 1.0 for n in notes)
    normal_flagged = {h["_source"]["trace_id"] for h in hits
                      if labels[h["_source"]["trace_id"]] == 0 and h["_source"]["logllm"]["anomaly"]["label"] == "anomalous"}
    normal = sum(1 for v in labels.values() if v == 0)
    assert len(normal_flagged) <= 0.1 * normal, f"{len(normal_flagged)} of {normal} normal requests flagged"

    # An operator marks what was flagged (or, if nothing was, three requests) as normal, by a query
    # over the index as in Kibana: the learner answers those sequences normal/suppressed from then on.
    chosen = sorted(normal_flagged)[:3] or sorted(labels)[:3]
    query = "trace_id:(" + " OR ".join(f'"{c}"' for c in chosen) + ")"
    fed = subprocess.run([sys.executable, "-m", "logllm_plugin", "es", "feedback", "--url", elasticsearch_url,
                          "--index", index, "--query", query, "--as", "normal", "--learn", str(tmp_path / "learn")],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert fed.returncode == 0, fed.stderr[-3000:]
    answer = json.loads(fed.stdout.strip().splitlines()[-1])
    assert answer["accepted"] == len(chosen) and len(answer["sequences"]) == len(chosen)
    from logllm_plugin.learning.learner import LearningDetector

    learner = LearningDetector.open(tmp_path / "learn", threads=1)
    try:
        lines_of = {}
        for h in sorted(hits, key=lambda h: h["_source"]["logllm"]["sequence"]["position"]):
            lines_of.setdefault(h["_source"]["logllm"]["sequence"]["id"], []).append(h["_source"]["message"])
        chosen_ids = [i for i in lines_of if any(i.startswith(f"{c}#") for c in chosen)]
        verdicts = learner.detect([lines_of[i] for i in chosen_ids])
        assert [(v.label, v.suppressed) for v in verdicts] == [("normal", True)] * len(chosen_ids)
    finally:
        learner.close()

    nothing = subprocess.run([sys.executable, "-m", "logllm_plugin", "es", "feedback", "--url", elasticsearch_url,
                              "--index", index, "--query", 'trace_id:"no-such-request"', "--as", "normal",
                              "--learn", str(tmp_path / "learn")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert nothing.returncode != 0 and "no annotated document matches" in nothing.stderr, nothing.stderr
