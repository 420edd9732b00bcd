"""`logllm-plugin bench learn`: learning mode end to end, beside the references it must match.

1. A real `serve --learn` process on port 0; the normal sequences of the training part (plus, with
   `--contamination`, that share of the training part's anomalies, unlabeled) are streamed to it
   over HTTP, as traffic; the first model trains once they are all in (`--learn-min-sequences`).
2. Wait for `GET /v1/model` to say `serving` (time from learning to serving is reported).
3. The test part is streamed; its verdicts give precision/recall/F1.
Measured in the same run, on the same normal history:
* `train small --normal-only` (the trainer's defaults), evaluated on the same test part;
* the label-free novelty rule: a sequence is anomalous when it holds a masked line, or a pair of
  consecutive masked lines, that the history never had (DeepLog's idea without the LSTM).

Splits: the data's own `split` field (train/test, or train_normal → test_*) when it has one, else chronological (file
order) at `--train-fraction`.
"""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Optional, Sequence

from logllm_plugin.records import LogSequence

BATCH = 64


class ServerRefused(Exception):
    """The learning server answered a request with an error: the data does not fit its limits."""


def _error_text(exc) -> str:
    try:
        return json.loads(exc.read()).get("error", "")
    except (ValueError, OSError, AttributeError):
        return str(exc)


def split_parts(sequences: list[LogSequence], train_fraction: float) -> tuple[list[LogSequence], list[LogSequence], str]:
    # train/test, or a normal-only split's train_normal / test_normal + test_abnormal (OpenStack's)
    train = [s for s in sequences if (s.split or "").startswith("train")]
    test = [s for s in sequences if (s.split or "").startswith("test")]
    if train and test:
        return train, test, "split field"
    cut = int(round(len(sequences) * train_fraction))
    return sequences[:cut], sequences[cut:], f"chronological {train_fraction:.0%}/{1 - train_fraction:.0%}"


def novelty_rule(history: Sequence[Sequence[str]], test: Sequence[Sequence[str]]) -> list[int]:
    from logllm_plugin.templates import TemplateStore

    masker = TemplateStore()
    lines, pairs = set(), set()
    for seq in history:
        masked = [masker.mask(x) for x in seq]
        lines.update(masked)
        pairs.update(zip(masked, masked[1:]))
    out = []
    for seq in test:
        masked = [masker.mask(x) for x in seq]
        out.append(int(any(m not in lines for m in masked) or any(p not in pairs for p in zip(masked, masked[1:]))))
    return out


def prf(labels: Sequence[int], predicted: Sequence[int]) -> dict:
    tp = sum(1 for y, p in zip(labels, predicted) if y == 1 and p == 1)
    fp = sum(1 for y, p in zip(labels, predicted) if y == 0 and p == 1)
    fn = sum(1 for y, p in zip(labels, predicted) if y == 1 and p == 0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    normal = sum(1 for y in labels if y == 0)
    return {"f1": round(f1, 4), "precision": round(precision, 4), "recall": round(recall, 4),
            "false_positive_rate": round(fp / normal, 4) if normal else None, "tp": tp, "fp": fp, "fn": fn}


def _free_ports(n: int) -> list[int]:
    """`n` distinct free ports, all held until every one is picked: a server given `--port 0` could
    otherwise be handed the port just chosen for its HTTP side (a gRPC answer to an HTTP request)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class LearningServer:
    """A `serve --learn` subprocess with its HTTP endpoint."""

    def __init__(self, directory: Path, min_sequences: Optional[int], threads: Optional[int], extra: Sequence[str] = (),
                 log_path: Optional[Path] = None, env: Optional[dict] = None, mode: str = "--learn"):
        grpc_port, self.http_port = _free_ports(2)
        args = [sys.executable, "-m", "logllm_plugin", "serve", mode, str(directory), "--port", str(grpc_port),
                "--http-port", str(self.http_port), *extra]
        if min_sequences is not None:
            args += ["--learn-min-sequences", str(min_sequences)]
        if threads:
            args += ["--threads", str(threads)]
        self.log = open(log_path or os.devnull, "w")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        deadline = time.monotonic() + 120
        while True:
            try:
                self.model()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"serve --learn did not start (exit {self.proc.poll()}); see {log_path}")
                time.sleep(0.2)

    def _call(self, method: str, path: str, body: Optional[dict] = None, timeout_s: float = 120) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return json.loads(answer.read())

    def model(self) -> dict:
        return self._call("GET", "/v1/model", timeout_s=10)

    def detect(self, sequences: Sequence[Sequence[str]]) -> list[dict]:
        verdicts: list[dict] = []
        for start in range(0, len(sequences), BATCH):
            chunk = [list(s) for s in sequences[start : start + BATCH]]
            try:
                verdicts.extend(self._call("POST", "/v1/detect", {"sequences": chunk})["verdicts"])
            except urllib.error.HTTPError as exc:
                raise ServerRefused(f"the server refused sequences {start}-{start + len(chunk) - 1} (HTTP "
                                    f"{exc.code}): {_error_text(exc)}") from None
        return verdicts

    def feedback(self, sequences: Sequence[Sequence[str]], label: str) -> dict:
        return self._call("POST", "/v1/feedback", {"sequences": [list(s) for s in sequences], "label": label})

    def wait_for(self, predicate: Callable[[dict], bool], timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.model()
            if predicate(state):
                return state
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve --learn exited with {self.proc.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not reached within {timeout_s:.0f} s; last state: {json.dumps(state)[:800]}")
            time.sleep(1.0)

    def peak_rss_mib(self) -> Optional[float]:
        from logllm_plugin.benchmarks.server import peak_rss_mib

        return peak_rss_mib(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def history_of(train: list[LogSequence], contamination: float, seed: int) -> list[LogSequence]:
    """The normal training sequences, with `contamination` × that many anomalies mixed in unlabeled."""
    normal = [s for s in train if s.label == 0]
    anomalies = [s for s in train if s.label == 1]
    wanted = int(round(contamination * len(normal)))
    if wanted and not anomalies:
        raise ValueError("--contamination needs anomalies in the training part")
    rng = random.Random(seed)
    mixed = list(normal)
    for s in (rng.choice(anomalies) for _ in range(wanted)):
        mixed.insert(rng.randrange(len(mixed) + 1), s)
    return mixed


def run_learning_bench(data_path: str, *, train_fraction: float = 0.7, contamination: float = 0.0,
                       threads: Optional[int] = 1, timeout_s: float = 1800, reference: bool = True,
                       seed: int = 0, progress: Callable[[str], None] = lambda m: None) -> dict:
    from logllm_plugin.inputs import load_input

    sequences, _ = load_input(data_path)
    train, test, protocol = split_parts(sequences, train_fraction)
    test = [s for s in test if s.label is not None]
    history = history_of(train, contamination, seed)
    labels = [int(s.label) for s in test]
    result = {"data": data_path, "split": protocol, "history": len(history),
              "contamination": contamination, "test": len(test), "test_anomalies": sum(labels)}
    with tempfile.TemporaryDirectory(prefix="logllm-learn-bench-") as tmp:
        server = LearningServer(Path(tmp) / "learn", len(history), threads, ["--retrain-every", "0"],
                                log_path=Path(tmp) / "serve.log")
        try:
            progress(f"streaming {len(history)} history sequences to serve --learn")
            started = time.monotonic()
            server.detect([s.lines for s in history])
            streamed = time.monotonic()
            state = server.wait_for(lambda m: m["state"] == "serving" or (m.get("trainings", 0) and not m["training"]),
                                    timeout_s)
            result["learning_to_serving_s"] = round(time.monotonic() - streamed, 1)
            result["stream_s"] = round(streamed - started, 1)
            result["last_training"] = state.get("last_training")
            if state["state"] != "serving":
                why = (state.get("last_training") or {}).get("error") or "the first candidate failed its checks"
                result["learned"] = {"error": f"nothing serves: {why}", **prf(labels, [0] * len(labels))}
            else:
                progress(f"serving {state['version']}; streaming {len(test)} test sequences")
                verdicts = server.detect([s.lines for s in test])
                result["learned"] = prf(labels, [int(v["label"] == "anomalous") for v in verdicts])
                result["model_version"] = verdicts[0]["model_version"] if verdicts else ""
            result["server_peak_rss_mib"] = server.peak_rss_mib()
        finally:
            server.stop()
        result["novelty_rule"] = prf(labels, novelty_rule([s.lines for s in history], [s.lines for s in test]))
        if reference:
            progress("reference: train small --normal-only on the same history")
            result["train_small_normal_only"] = _reference(history, test, labels, Path(tmp) / "reference")
    return result


def _reference(history: list[LogSequence], test: list[LogSequence], labels: list[int], out: Path) -> dict:
    from logllm_plugin.config import load_config
    from logllm_plugin.detector import Detector
    from trainers.small import train_small

    started = time.monotonic()
    config = load_config(environ={}).label_free()  # as `train small --normal-only` trains
    unlabeled = [LogSequence(id=s.id, lines=s.lines, label=0) for s in history]
    train_small(unlabeled, None, config, out, normal_only=True)
    seconds = round(time.monotonic() - started, 1)
    detector = Detector.load(out)
    verdicts = detector.detect([s.lines for s in test])
    return {**prf(labels, [int(v.label == "anomalous") for v in verdicts]), "train_s": seconds}


# -- drift: a release brings new line types -------------------------------------------------------------
RELEASE_LINE = "feature flags reloaded from config service (release 2.0)"


def released(lines: Sequence[str], changed: set[str], masker, n: int) -> list[str]:
    """The same sequence as the next release logs it: some line types reworded, a new line in half."""
    out = [f"{line} [build 2.0]" if masker.mask(line) in changed else line for line in lines]
    if n % 2 == 0:
        out.insert(min(1, len(out)), RELEASE_LINE)
    return out


def run_drift_bench(data_path: str, *, train_fraction: float = 0.7, threads: Optional[int] = 1,
                    retrain_every_s: float = 30.0, timeout_s: float = 1800, changed_types: int = 3,
                    progress: Callable[[str], None] = lambda m: None) -> dict:
    """Phase 1: learn, measure. Phase 2 (a release): measure with the old model, stream the new
    traffic, wait for the scheduled retrain, measure again."""
    from collections import Counter

    from logllm_plugin.inputs import load_input
    from logllm_plugin.templates import TemplateStore

    sequences, _ = load_input(data_path)
    train, test, protocol = split_parts(sequences, train_fraction)
    test = [s for s in test if s.label is not None]
    history = [s for s in train if s.label == 0]
    masker = TemplateStore()
    common = Counter(masker.mask(line) for s in history for line in s.lines)
    changed = {text for text, _ in common.most_common(changed_types)}
    after = [released(s.lines, changed, masker, n) for n, s in enumerate(history)]
    test_after = [released(s.lines, changed, masker, n) for n, s in enumerate(test)]
    labels = [int(s.label) for s in test]
    result = {"data": data_path, "split": protocol, "history": len(history), "test": len(test),
              "changed_line_types": changed_types, "retrain_every_s": retrain_every_s}
    # The retrain falls due once the release's traffic is in.
    env = {"LOGLLM_LEARNING__MIN_NEW_SEQUENCES": str(len(after))}
    with tempfile.TemporaryDirectory(prefix="logllm-drift-bench-") as tmp:
        server = LearningServer(Path(tmp) / "learn", len(history), threads, ["--retrain-every", f"{retrain_every_s}s"],
                                log_path=Path(tmp) / "serve.log", env=env)
        follower = None
        try:
            server.detect([s.lines for s in history])
            first = server.wait_for(lambda m: m["state"] == "serving", timeout_s)["version"]
            # Measured through a follower (same versions, no history): test sequences scored
            # through the learner would become its training data.
            follower = LearningServer(Path(tmp) / "learn", None, threads, mode="--follow",
                                      log_path=Path(tmp) / "follow.log", env={"LOGLLM_LEARNING__POLL_S": "0.5"})

            def measured(batch) -> dict:
                version = server.model()["version"]
                follower.wait_for(lambda m: m["version"] == version, 60)
                verdicts = follower.detect(batch)
                return {**prf(labels, [int(v["label"] == "anomalous") for v in verdicts]),
                        "model_version": verdicts[0]["model_version"] if verdicts else ""}

            result["phase1"] = measured([s.lines for s in test])
            progress(f"phase 1 on {first}: {result['phase1']}")
            result["phase2_before_retrain"] = measured(test_after)
            progress(f"release, old model: {result['phase2_before_retrain']}")
            trainings = server.model()["trainings"]
            server.detect(after)
            started = time.monotonic()
            state = server.wait_for(lambda m: m["trainings"] > trainings and not m["training"], timeout_s)
            result["retrain_s"] = round(time.monotonic() - started, 1)
            result["retrain"] = state.get("last_training")
            result["phase2_after_retrain"] = measured(test_after)
            progress(f"release, retrained {state['version']}: {result['phase2_after_retrain']}")
        finally:
            server.stop()
            if follower is not None:
                follower.stop()
    base = result["phase1"]["false_positive_rate"] or 0.0
    after_fpr = result["phase2_after_retrain"]["false_positive_rate"] or 0.0
    result["fpr_ratio_after_retrain"] = round(after_fpr / base, 3) if base else None
    return result
