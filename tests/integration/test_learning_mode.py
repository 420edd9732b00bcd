"""Learning mode with real processes: `serve --learn` over HTTP, `serve --follow`, the model store.

One learner is trained per module on generated request logs (our own generator, order/count
anomalies included) and shared by the tests; each test says what an operator would see.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from logllm_plugin.benchmarks.learning import LearningServer
from logllm_plugin.data.generate import GenerateOptions, generate

pytestmark = [pytest.mark.server, pytest.mark.slow]
CLI = [sys.executable, "-m", "logllm_plugin"]
HISTORY = 1500
# Quality is measured by `bench learn`; here the loop is what is under test.
FAST = {"LOGLLM_LEARNING__POLL_S": "0.5"}
RELEASE_LINE = "INFO feature flag checkout_v2 evaluated: enabled for this tenant"


def released(sequences: list[list[str]]) -> list[list[str]]:
    """Normal requests after a release that logs one benign line the history never held: what an
    operator marks as a false positive (the generated traffic alone may give the model none)."""
    return [s[:1] + [RELEASE_LINE] + s[1:] for s in sequences]


@pytest.fixture(scope="module")
def traffic():
    rows = generate(GenerateOptions(n=2500, seed=5, anomaly_rate=0.15, noise_rate=0.1))
    normal = [r["lines"] for r in rows if r["label"] == 0]
    history, later = normal[:HISTORY], normal[HISTORY:]
    anomalies = [r["lines"] for r in rows if r["label"] == 1]
    return {"history": history, "normal": later, "anomalies": anomalies}


@pytest.fixture(scope="module")
def learned(tmp_path_factory, traffic):
    """A learner that has been through learning → training → serving; its directory and state."""
    directory = tmp_path_factory.mktemp("learn") / "store"
    server = LearningServer(directory, HISTORY, threads=1, extra=["--retrain-every", "0"], env=FAST,
                            log_path=directory.parent / "serve.log")
    try:
        before = server.model()
        first = server.detect(traffic["history"][:5])
        server.detect(traffic["history"][5:])
        state = server.wait_for(lambda m: m["state"] == "serving" or (m["trainings"] and not m["training"]), 900)
        yield {"server": server, "directory": directory, "before": before, "first": first, "state": state}
    finally:
        server.stop()


def test_a_new_server_answers_unscored_while_it_learns(learned):
    assert learned["before"]["state"] == "learning" and learned["before"]["history_sequences"] == 0
    assert {v["label"] for v in learned["first"]} == {"unscored"}
    assert {v["status"] for v in learned["first"]} == {"learning"}
    assert {v["model_version"] for v in learned["first"]} == {""}


def test_after_enough_traffic_a_checked_model_serves_and_names_its_version(learned, traffic):
    state = learned["state"]
    assert state["state"] == "serving", json.dumps(state.get("last_training"))
    assert state["history_sequences"] == HISTORY and state["version"].endswith("/v000001")
    checks = state["last_training"]["checks"]
    assert checks["passed"] and checks["flag_rate"] <= 0.1 and checks["injected_recall"] >= max(0.15, 2 * checks["flag_rate"])
    verdicts = learned["server"].detect(traffic["normal"][:50])
    assert {v["model_version"] for v in verdicts} == {state["version"]}
    assert {v["status"] for v in verdicts} == {"ok"}
    assert sum(v["label"] == "normal" for v in verdicts) >= 40


def test_familiarity_tells_logs_the_model_has_seen_from_logs_it_has_not(learned, traffic):
    seen = learned["server"].detect(traffic["history"][:20])
    foreign = [[f"kernel: EDAC MC{n}: 1 CE memory read error on CPU_SrcID#0 page 0x{n:x}" for n in range(8)]]
    assert min(v["familiarity"] for v in seen) == 1.0
    assert learned["server"].detect(foreign)[0]["familiarity"] == 0.0


def test_feedback_suppresses_false_positives_at_once_and_leaves_anomalies_alone(learned, traffic):
    server = learned["server"]
    normal = traffic["normal"][:300] + released(traffic["normal"][:15])
    first = server.detect(normal)
    false_positives = [s for s, v in zip(normal, first) if v["label"] == "anomalous"]
    anomalies_before = [v["label"] for v in server.detect(traffic["anomalies"][:100])]
    assert false_positives, "the generated traffic gives this model a few false positives to correct"
    answer = server.feedback(false_positives, "normal")
    assert answer["accepted"] == len(false_positives)
    second = server.detect(false_positives)
    assert {(v["label"], v["suppressed"]) for v in second} == {("normal", True)}
    assert [v["label"] for v in server.detect(traffic["anomalies"][:100])] == anomalies_before


@pytest.mark.parametrize("body,problem", [
    ({"sequences": [[]], "label": "normal"}, "sequence 0 is empty"),
    ({"sequences": [["x"] * 10_001], "label": "normal"}, "10001 lines; the limit is 10000"),
    ({"sequences": [["x"]], "label": "fine"}, "label"),
    ({"label": "normal"}, "sequences"),
])
def test_bad_feedback_is_answered_400_naming_the_problem(learned, body, problem):
    with pytest.raises(urllib.error.HTTPError) as raised:
        learned["server"]._call("POST", "/v1/feedback", body)
    assert raised.value.code == 400
    assert problem in json.loads(raised.value.read())["error"]


def test_a_sequence_over_the_servers_limit_stops_the_bench_with_the_servers_reason(learned):
    from logllm_plugin.benchmarks.learning import ServerRefused

    with pytest.raises(ServerRefused, match=r"sequences 0-1 \(HTTP 400\): sequence 1 has 10001 lines; the limit is 10000"):
        learned["server"].detect([["fits"], ["x"] * 10_001])


def test_why_the_sender_closed_a_sequence_is_kept_with_the_history(learned):
    """closed_by in a request (the collector processor sends its sequencer's reason) is stored with
    the learner's history, so a sequence cut short by a time limit trains as normal; an unknown
    reason is a 400 naming it."""
    server = learned["server"]
    cut = ["edge check: request accepted by the gateway", "edge check: upstream call started"]
    server._call("POST", "/v1/detect", {"sequences": [{"id": "a", "lines": cut, "closed_by": "idle"},
                                                      {"id": "b", "lines": cut[:1]}]})
    with pytest.raises(urllib.error.HTTPError) as raised:
        server._call("POST", "/v1/detect", {"sequences": [{"lines": ["x"], "closed_by": "tired"}]})
    assert raised.value.code == 400 and "closed_by 'tired'" in json.loads(raised.value.read())["error"]
    stored = [json.loads(line) for segment in (learned["directory"] / "history").glob("*/seg-*.jsonl")
              for line in segment.read_text(encoding="utf-8").splitlines()]
    edges = sorted((len(s["lines"]), s["edge"]) for s in stored if s["lines"][0].startswith("edge check"))
    assert edges == [(1, None), (2, "idle")]


def test_closed_by_sent_with_curl_and_grpcurl_is_kept_with_the_history(learned):
    """The same as above from clients we did not write: curl on HTTP, grpcurl on gRPC (the proto's
    `closed_by` field, as the collector processor fills it)."""
    from tests.integration.test_serve_wiring import GRPCURL
    from tests.conftest import require

    require(shutil.which("curl"), "curl")
    require(os.path.exists(GRPCURL), "grpcurl: make test installs it into ~/.cache/logllm-ci/gobin")
    server = learned["server"]
    log = (learned["directory"].parent / "serve.log").read_text(encoding="utf-8")
    grpc_port = next(json.loads(line)["grpc_port"] for line in log.splitlines()
                     if line.startswith("{") and '"msg": "listening"' in line)
    by_curl = ["curl check: request accepted", "curl check: upstream call started"]
    by_grpcurl = ["grpcurl check: request accepted", "grpcurl check: upstream call started"]
    out = subprocess.run(["curl", "-sf", "-X", "POST", f"http://127.0.0.1:{server.http_port}/v1/detect",
                          "-H", "Content-Type: application/json",
                          "-d", json.dumps({"sequences": [{"lines": by_curl, "closed_by": "age"}]})],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout)["verdicts"][0]["status"] == "ok", out.stderr
    out = subprocess.run([GRPCURL, "-plaintext", "-d", json.dumps({"sequences": [{"lines": by_grpcurl,
                                                                                   "closed_by": "full"}]}),
                          f"127.0.0.1:{grpc_port}", "logllm.v1.Inference/Detect"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    stored = [json.loads(line) for segment in (learned["directory"] / "history").glob("*/seg-*.jsonl")
              for line in segment.read_text(encoding="utf-8").splitlines()]
    edges = {s["lines"][0].split(":")[0]: s["edge"] for s in stored if "check: request accepted" in s["lines"][0]}
    assert edges.get("curl check") == "age" and edges.get("grpcurl check") == "full", edges


def test_a_follower_serves_the_learners_version_and_refuses_a_corrupt_one(learned, traffic):
    directory: Path = learned["directory"]
    follower = LearningServer(directory, None, threads=1, env=FAST, mode="--follow",
                              log_path=directory.parent / "follow.log")
    try:
        state = follower.wait_for(lambda m: m["state"] == "serving", 60)
        assert state["version"] == learned["state"]["version"]
        sample = traffic["normal"][:30]
        assert [v["label"] for v in follower.detect(sample)] == [v["label"] for v in learned["server"].detect(sample)]
        # A half-copied version made current by hand: refused, the old one keeps serving.
        broken = directory / "models" / "v000002"
        shutil.copytree(directory / "models" / "v000001", broken)
        (broken / "model.safetensors").write_bytes(b"\0" * 64)
        (directory / "models" / "CURRENT").write_text(json.dumps({"version": "v000002"}))
        refused = follower.wait_for(lambda m: m["load_failures"] > 0, 30)
        assert "v000002 refused" in refused["last_load_error"]
        assert refused["version"].endswith("/v000001")
        assert {v["model_version"] for v in follower.detect(sample)} == {learned["state"]["version"]}
    finally:
        shutil.rmtree(directory / "models" / "v000002", ignore_errors=True)
        subprocess.run(CLI + ["models", "promote", "v000001", "--dir", str(directory)], check=True)
        follower.stop()


def test_models_list_and_rollback_through_the_cli(learned):
    directory = str(learned["directory"])
    listed = subprocess.run(CLI + ["models", "list", "--dir", directory, "--json"], capture_output=True, text=True,
                            check=True)
    rows = [json.loads(x) for x in listed.stdout.splitlines()]
    assert [(r["version"], r["current"]) for r in rows] == [("v000001", True)]
    refused = subprocess.run(CLI + ["models", "rollback", "--dir", directory], capture_output=True, text=True)
    assert refused.returncode == 1 and "nothing to roll back" in refused.stderr


def test_a_learner_killed_mid_training_leaves_the_store_usable(learned, traffic, tmp_path):
    directory = tmp_path / "store"
    shutil.copytree(learned["directory"], directory, ignore=shutil.ignore_patterns("*.lock"))
    env = {**FAST, "LOGLLM_LEARNING__MIN_NEW_SEQUENCES": "10"}
    learner = LearningServer(directory, None, threads=1, extra=["--retrain-every", "1s"], env=env,
                             log_path=tmp_path / "serve.log")
    try:
        learner.detect(traffic["normal"][:40])
        learner.wait_for(lambda m: m["training"], 60)
        deadline = time.monotonic() + 60  # the cycle picks its window first, then starts the trainer
        while not (trainer := _trainer_pids(learner.proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert trainer, "a training subprocess runs"
        os.kill(learner.proc.pid, signal.SIGKILL)
        learner.proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in trainer) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(p) for p in trainer), "the trainer dies with its learner"
    finally:
        learner.stop()
    assert list((directory / "models").glob(".tmp-*"))  # what the killed run left behind
    again = LearningServer(directory, None, threads=1, extra=["--retrain-every", "0"], env=FAST,
                           log_path=tmp_path / "again.log")
    try:
        state = again.model()
        assert state["state"] == "serving" and state["version"].endswith("/v000001")
        assert state["history_sequences"] >= HISTORY + 40
        assert not list((directory / "models").glob(".tmp-*"))
    finally:
        again.stop()


def test_after_the_next_retrain_the_model_itself_follows_the_operators_corrections(learned, traffic, tmp_path):
    """Suppression answers at once; the retrain after it must teach the model the same: the raw
    model directory (no feedback store in front of it) then agrees with the operator."""
    directory = tmp_path / "store"
    shutil.copytree(learned["directory"], directory, ignore=shutil.ignore_patterns("*.lock"))
    normal, anomalies = traffic["normal"][300:700] + released(traffic["normal"][300:315]), traffic["anomalies"]
    # The retrain falls due only after the corrections are in: the first pass's traffic stays under
    # min_new_sequences, and the traffic after the feedback takes it over.
    env = {**FAST, "LOGLLM_LEARNING__MIN_NEW_SEQUENCES": str(len(normal) + len(anomalies) + 20)}
    learner = LearningServer(directory, None, threads=1, extra=["--retrain-every", "1s"], env=env,
                             log_path=tmp_path / "serve.log")
    try:
        false_positives = [s for s, v in zip(normal, learner.detect(normal)) if v["label"] == "anomalous"]
        missed = [s for s, v in zip(anomalies, learner.detect(anomalies)) if v["label"] == "normal"][:5]
        assert false_positives, "the generated traffic gives this model false positives to correct"
        learner.feedback(false_positives, "normal")
        if missed:
            learner.feedback(missed, "anomalous")
        learner.detect(traffic["history"][:60])  # more traffic: the retrain falls due
        state = learner.wait_for(lambda m: m["trainings"] >= 1 and not m["training"], 900)
        assert state["version"].endswith("/v000002"), json.dumps(state.get("last_training"))
        # the copied store also holds the corrections of the feedback test above
        assert state["last_training"]["left_out"]["marked_normal"] >= len({json.dumps(s) for s in false_positives})
    finally:
        learner.stop()
    raw = _raw_labels(directory / "models" / "v000002", false_positives + missed, tmp_path)
    right = sum(label == "normal" for label in raw[: len(false_positives)])
    assert right >= 0.8 * len(false_positives), f"{right} of {len(false_positives)} corrected false positives"
    # Sequences marked anomalous are trained as label 1 too (test_learning_pieces checks they reach
    # the trainer), but on this data the retrained model still missed all 5 (CI at c9fe909): a few
    # labeled positives among injected ones do not move the label-free model yet. Not asserted.


def _raw_labels(model_dir: Path, sequences, tmp_path: Path) -> list[str]:
    """The model directory's own labels on the raw lines (`detect --model`): it was trained on
    personal-data-masked history and says so in detector.json, so it masks them the same way."""
    path = tmp_path / "corrected.jsonl"
    path.write_text("".join(json.dumps({"id": f"c{n}", "lines": s}) + "\n" for n, s in enumerate(sequences)))
    out = subprocess.run(CLI + ["detect", "--model", str(model_dir), "--input", str(path), "--show", "jsonl"],
                         capture_output=True, text=True, check=True)
    return [json.loads(x)["label"] for x in out.stdout.splitlines()]


def _trainer_pids(parent: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent), "-f", "logllm_plugin.learning.train_job"],
                         capture_output=True, text=True)
    return [int(x) for x in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status
