"""The logllm processor inside the real collector: `processors: [memory_limiter, logllm, batch]`.

OTLP/gRPC in (a client here) → otelcol-logllm (scripts/build-otelcol, with
collectors/otel/logllmprocessor) → otlp_grpc exporter → an OTLP receiver written for the test,
with a real `logllm-plugin serve` subprocess as the inference server (or, for the hang and
memory-bound faults, a gRPC server here that never answers). Also: bad configs make the collector
refuse to start naming the key, and ocb builds a collector with the processor from
collectors/otel/builder-config.yaml (the same component list as the hand-written distribution).

The binary is built once (cached outside the repository; a cold build takes minutes). Without Go
the tests skip, except with CI=true, where that is a failure.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from collectors.otel.collector_process import CollectorProcess, build_collector, find_go, free_port
from tests.conftest import require, DATA, REPO
from tests.integration.test_otel_collector import OtlpLogsReceiver, ordered_exporter

pytestmark = pytest.mark.collector
CLI = [sys.executable, "-m", "logllm_plugin"]


def go_or_skip():
    require(find_go(), "the Go toolchain ('go'): to build the collector with the logllm processor")


@pytest.fixture(scope="session")
def collector_binary():
    go_or_skip()
    return build_collector()


class Serve:
    """`logllm-plugin serve` on a fixed port (so it can be killed and started again there)."""

    def __init__(self, model_dir, port):
        self.model_dir, self.port, self.proc = model_dir, port, None
        self._serving = threading.Event()
        self.stderr_lines = []  # shown when it does not become ready

    def start(self):
        self._serving.clear()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(CLI + ["serve", "--model", str(self.model_dir), "--host", "127.0.0.1",
                                            "--port", str(self.port), "--threads", "1"],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        return self

    def _read(self, proc):
        for line in proc.stderr:
            self.stderr_lines.append(line)
            try:
                if json.loads(line).get("msg") == "serving":
                    self._serving.set()
            except ValueError:
                continue

    def serving(self):
        return self._serving.is_set()

    def wait_serving(self, timeout=120):
        deadline = time.monotonic() + timeout
        while not self._serving.wait(0.2) and self.proc.poll() is None and time.monotonic() < deadline:
            pass
        assert self._serving.is_set(), (f"logllm-plugin serve did not become ready (exit status {self.proc.poll()}):\n"
                                        + "".join(self.stderr_lines)[-4000:])

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture()
def serve(seed_model_dir):
    started = []

    def start(port):
        s = Serve(seed_model_dir, port).start()
        started.append(s)
        s.wait_serving()
        return s

    yield start
    for s in started:
        s.kill()


def processor_config(otlp_port, out_port, health_port, metrics_port=None, **logllm):
    settings = {"endpoint": "127.0.0.1:50051", **logllm}
    logllm_yaml = "".join(f"    {k}: {json.dumps(v) if not isinstance(v, str) else v}\n" for k, v in settings.items())
    metrics = (f"""{{level: normal, readers: [{{pull: {{exporter: {{prometheus: {{host: 127.0.0.1, port: {metrics_port}}}}}}}}}]}}"""
               if metrics_port else "{level: none}")
    exporter = ordered_exporter("out", out_port, "    timeout: 10s\n")
    return f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{otlp_port}}}
processors:
  memory_limiter: {{check_interval: 1s, limit_mib: 2000, spike_limit_mib: 400}}
  logllm:
{logllm_yaml}  batch: {{timeout: 200ms, send_batch_size: 50, send_batch_max_size: 50}}
exporters:
{exporter}extensions:
  health_check: {{endpoint: 127.0.0.1:{health_port}}}
service:
  extensions: [health_check]
  telemetry:
    metrics: {metrics}
  pipelines:
    logs:
      receivers: [otlp]
      processors: [memory_limiter, logllm, batch]
      exporters: [otlp_grpc/out]
"""


def export(channel, records):
    """One OTLP Export call; `records` are (key, body): the key goes in the record attribute `seq`."""
    logs = [logs_pb2.LogRecord(body=common_pb2.AnyValue(string_value=body), attributes=[
        common_pb2.KeyValue(key="seq", value=common_pb2.AnyValue(string_value=key))]) for key, body in records]
    request = logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource_pb2.Resource(attributes=[common_pb2.KeyValue(
            key="service.name", value=common_pb2.AnyValue(string_value="e2e"))]),
        scope_logs=[logs_pb2.ScopeLogs(log_records=logs)])])
    logs_service_pb2_grpc.LogsServiceStub(channel).Export(request, timeout=10)


def by_key(received):
    out = {}
    for body, attrs in received:
        out.setdefault(attrs["seq"], []).append((body, attrs))
    return out


def test_labeled_sequences_through_the_collector_get_the_in_process_verdict(collector_binary, serve, seed_model_dir):
    """Labeled sequences, their lines interleaved round-robin across Export calls and keyed by an
    attribute: every record once, in order per key, one sequence each with the verdict the same
    model gives in-process; the labeled anomalies come out anomalous; the processor's metrics count
    what passed."""
    from collectors.scoring import local_scorer

    rows = [json.loads(line) for line in (DATA / "seed_test.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if 6 <= len(r["lines"]) <= 15]  # one sequence each at max_lines 15
    chosen = [r for r in rows if r["label"] == 1][:15] + [r for r in rows if r["label"] == 0][:15]
    expected = {f"s{i}": r for i, r in enumerate(chosen)}
    interleaved = [(sid, r["lines"][k]) for k in range(15) for sid, r in expected.items() if k < len(r["lines"])]
    server_port, otlp_port, health_port, metrics_port = free_port(), free_port(), free_port(), free_port()
    serve(server_port)
    config = processor_config(otlp_port, 0, health_port, metrics_port, endpoint=f"127.0.0.1:{server_port}",
                              key_attributes=["seq"], idle_timeout="2s", latency_budget="10s", timeout="5s")
    with OtlpLogsReceiver() as out:
        config = config.replace("127.0.0.1:0\n", f"127.0.0.1:{out.port}\n")
        with CollectorProcess(config, collector_binary, health_port=health_port) as col:
            with grpc.insecure_channel(f"127.0.0.1:{otlp_port}") as channel:
                for start in range(0, len(interleaved), 20):
                    export(channel, interleaved[start:start + 20])
            arrived = out.wait_for(len(interleaved), 60)
            time.sleep(0.5)  # room for a duplicate to show up
            metrics = scrape(metrics_port)
        assert arrived, f"{len(out.records)}/{len(interleaved)} arrived; collector log:\n{col.log_text()[-4000:]}"
    assert len(out.records) == len(interleaved)
    got = by_key(out.records)
    assert set(got) == set(expected)
    verdicts = local_scorer(str(seed_model_dir))([r["lines"] for r in expected.values()], 60)
    flagged = {}
    for (sid, row), verdict in zip(expected.items(), verdicts):
        records = got[sid]
        assert [body for body, _ in records] == row["lines"], sid  # once each, in order
        assert len({a["logllm.sequence.id"] for _, a in records}) == 1, f"{sid} was cut into several sequences"
        assert [int(a["logllm.sequence.position"]) for _, a in records] == list(range(len(records)))
        assert {a["logllm.status"] for _, a in records} == {"ok"}, sid
        assert {a["logllm.anomaly.label"] for _, a in records} == {verdict.label}, sid
        assert abs(float(records[0][1]["logllm.anomaly.score"]) - verdict.score) < 1e-4, sid
        assert {a["logllm.anomaly.category"] for _, a in records} == {verdict.category}, sid
        evidence = [i for i, (_, a) in enumerate(records) if a["logllm.evidence"] in ("true", "True", True)]
        assert evidence == sorted(verdict.evidence), sid
        flagged[sid] = verdict.label == "anomalous"
    anomalies = [sid for sid, r in expected.items() if r["label"] == 1]
    normals = [sid for sid, r in expected.items() if r["label"] == 0]
    assert sum(flagged[s] for s in anomalies) >= 0.9 * len(anomalies), flagged
    assert sum(flagged[s] for s in normals) <= 0.1 * len(normals), flagged
    assert metric_sum(metrics, "otelcol_processor_logllm_records", status="ok") == len(interleaved), metrics[-3000:]
    assert metric_sum(metrics, "otelcol_processor_logllm_sequences_scored") == len(expected), metrics[-3000:]
    assert metric_sum(metrics, "otelcol_processor_logllm_records_held") == 0, metrics[-3000:]


def scrape(port):
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def metric_sum(text, name, **labels):
    """Sum of the samples of `name` (any suffix such as _total) whose labels include `labels`."""
    total, found = 0.0, False
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:_total|_ratio)?(?:\{{(.*)\}})?\s+(\S+)$", line)
        if not m:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total, found = total + float(m.group(2)), True
    assert found, f"no sample of {name}{labels} in the collector's metrics"
    return total


def test_server_killed_mid_stream_and_restarted_loses_and_duplicates_nothing(collector_binary, serve):
    """Records keep flowing while the server is down (unannotated: unavailable/timeout) and are
    scored again after it is back; every record exactly once, in order per key."""
    keys = [f"k{j}" for j in range(6)]
    server_port, otlp_port, health_port = free_port(), free_port(), free_port()
    server = serve(server_port)
    config = processor_config(otlp_port, 0, health_port, endpoint=f"127.0.0.1:{server_port}",
                              key_attributes=["seq"], max_lines=10, idle_timeout="1s", latency_budget="4s",
                              timeout="2s")
    sent = []
    with OtlpLogsReceiver() as out:
        config = config.replace("127.0.0.1:0\n", f"127.0.0.1:{out.port}\n")
        with CollectorProcess(config, collector_binary, health_port=health_port) as col:
            with grpc.insecure_channel(f"127.0.0.1:{otlp_port}") as channel:
                def send_round(i):
                    batch = [(k, f"{k} request {i} served in {i % 17} ms") for k in keys]
                    export(channel, batch)
                    sent.extend(batch)

                i = 0
                for _ in range(30):  # ~3 s with the server up
                    send_round(i)
                    i += 1
                    time.sleep(0.1)
                server.kill()
                for _ in range(30):  # ~3 s with the server down
                    send_round(i)
                    i += 1
                    time.sleep(0.1)
                restarted = Serve(server.model_dir, server_port).start()
                try:
                    while not restarted.serving():  # keep streaming while it starts
                        send_round(i)
                        i += 1
                        time.sleep(0.1)
                        assert i < 2000, "the restarted server never became ready"
                    for _ in range(30):  # ~3 s with the server back
                        send_round(i)
                        i += 1
                        time.sleep(0.1)
                    arrived = out.wait_for(len(sent), 60)
                    time.sleep(0.5)
                finally:
                    restarted.kill()
        assert arrived, f"{len(out.records)}/{len(sent)} arrived; collector log:\n{col.log_text()[-4000:]}"
    assert len(out.records) == len(sent), "records lost or duplicated"
    got = by_key(out.records)
    for key in keys:
        assert [body for body, _ in got[key]] == [body for k, body in sent if k == key], f"{key}: order/once"
    statuses = [attrs["logllm.status"] for _, attrs in out.records]
    assert statuses[0] == "ok" and statuses[-1] == "ok", (statuses[:3], statuses[-3:])
    assert {"unavailable", "timeout"} & set(statuses), set(statuses)
    for _, attrs in out.records:
        if attrs["logllm.status"] != "ok":
            assert attrs["logllm.anomaly.label"] == "unscored" and "logllm.anomaly.score" not in attrs


class HangingInference:
    """A logllm.v1.Inference server whose Detect never answers (until the test ends)."""

    def __init__(self):
        from logllm_plugin.proto.logllm.v1 import inference_pb2_grpc

        self.release = threading.Event()
        self.calls = 0
        outer = self

        class Servicer(inference_pb2_grpc.InferenceServicer):
            def Detect(self, request, context):  # noqa: N802 (gRPC method name)
                outer.calls += 1
                outer.release.wait(60)
                context.abort(grpc.StatusCode.UNAVAILABLE, "released by the test")

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        inference_pb2_grpc.add_InferenceServicer_to_server(Servicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.stop(0)


def test_hanging_server_releases_records_within_the_budget_and_a_full_processor_rejects(collector_binary):
    """A server that never answers: held records come out `timeout` within latency_budget; a batch
    that does not fit under max_held_records passes straight on `rejected`."""
    otlp_port, health_port = free_port(), free_port()
    budget_s = 3.0
    with HangingInference() as hanging, OtlpLogsReceiver() as out:
        config = processor_config(otlp_port, out.port, health_port, endpoint=f"127.0.0.1:{hanging.port}",
                                  key_attributes=["seq"], max_lines=4, min_lines=2, idle_timeout="1s",
                                  latency_budget=f"{budget_s}s", timeout="10s", max_held_records=10)
        with CollectorProcess(config, collector_binary, health_port=health_port) as col:
            with grpc.insecure_channel(f"127.0.0.1:{otlp_port}") as channel:
                began = time.monotonic()
                export(channel, [("a", f"a {i}") for i in range(4)] + [("b", f"b {i}") for i in range(4)])  # 8 held
                export(channel, [("c", f"c {i}") for i in range(5)])  # 8 + 5 > 10: straight on
                assert out.wait_for(5, 5), col.log_text()[-4000:]
                rejected_after = time.monotonic() - began
                first = list(out.records[:5])
                assert out.wait_for(13, budget_s + 5), col.log_text()[-4000:]
                released_after = time.monotonic() - began
            time.sleep(0.3)
    assert [body for body, _ in first] == [f"c {i}" for i in range(5)]
    assert {a["logllm.status"] for _, a in first} == {"rejected"}
    assert rejected_after < budget_s, rejected_after
    held = out.records[5:]
    assert len(out.records) == 13
    assert sorted(body for body, _ in held) == sorted([f"a {i}" for i in range(4)] + [f"b {i}" for i in range(4)])
    assert {a["logllm.status"] for _, a in held} == {"timeout"}
    assert {a["logllm.anomaly.label"] for _, a in out.records} == {"unscored"}
    assert hanging.calls >= 1
    # The budget plus the batch processor's 200 ms and the export.
    assert released_after <= budget_s + 0.8, f"held {released_after:.2f}s past a {budget_s}s latency budget"


@pytest.mark.parametrize("setting, key", [
    ("max_lines: 3", "max_lines"),             # below min_lines (6)
    ("max_line: 20", "max_line"),              # unknown key
    ("endpoint: no-port-here", "endpoint"),    # bad endpoint
])
def test_bad_config_makes_the_collector_refuse_to_start_naming_the_key(collector_binary, tmp_path, setting, key):
    config = tmp_path / "config.yaml"
    config.write_text(f"""
receivers:
  otlp:
    protocols: {{grpc: {{endpoint: 127.0.0.1:{free_port()}}}}}
processors:
  logllm:
    {setting}
exporters:
  debug: {{}}
service:
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    logs: {{receivers: [otlp], processors: [logllm], exporters: [debug]}}
""")
    done = subprocess.run([str(collector_binary), f"--config=file:{config}"], capture_output=True, text=True,
                          timeout=60)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "logllm" in output and key in output, output


def test_ocb_builds_a_collector_with_logllm_from_the_manifest(tmp_path):
    """collectors/otel/builder-config.yaml, run through the OpenTelemetry Collector Builder (v0.165.0,
    `go install`ed into the cache), builds a collector that has the logllm processor and accepts
    configs/otelcol-processor.yaml; its generated component list is the hand-written
    collectors/otel/otelcol/components.go's (the sources scripts/build-otelcol compiles)."""
    go_or_skip()
    cache = os.path.join(os.environ.get("LOGLLM_CACHE", os.path.expanduser("~/.cache/logllm-ci")))
    gobin = os.path.join(cache, "ocb-v0.165.0")
    env = dict(os.environ, GOMODCACHE=os.path.join(cache, "otelcol", "gomod"),
               GOCACHE=os.path.join(cache, "otelcol", "gobuild"), GOTOOLCHAIN="local", GOWORK="off", GOFLAGS="",
               GOBIN=gobin, CGO_ENABLED="0")
    builder = os.path.join(gobin, "builder")
    if not os.access(builder, os.X_OK):
        os.makedirs(gobin, exist_ok=True)
        done = subprocess.run([find_go(), "install", "go.opentelemetry.io/collector/cmd/builder@v0.165.0"],
                              cwd=gobin, env=env, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr[-4000:]
    dist = tmp_path / "dist"
    manifest = (REPO / "collectors" / "otel" / "builder-config.yaml").read_text()
    manifest = manifest.replace("output_path: ./build/otelcol-logllm", f"output_path: {dist}")
    (tmp_path / "builder-config.yaml").write_text(manifest)
    done = subprocess.run([builder, "--config", str(tmp_path / "builder-config.yaml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    def modules(path):
        return sorted(re.findall(r'"([\w./-]+ v[\w.-]+)"', path.read_text()))

    generated = modules(dist / "components.go")
    assert "github.com/logllm/logllm-plugin/collectors/otel/logllmprocessor v0.0.0" in generated
    assert generated == modules(REPO / "collectors" / "otel" / "otelcol" / "components.go")
    binary = dist / "otelcol-logllm"
    listed = subprocess.run([str(binary), "components"], capture_output=True, text=True, timeout=60)
    assert "name: logllm\n" in listed.stdout and "logllmprocessor v0.0.0" in listed.stdout, listed.stdout[-3000:]
    checked = subprocess.run([str(binary), "validate", f"--config=file:{REPO / 'configs' / 'otelcol-processor.yaml'}"],
                             capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_bench_collector_reports_same_run_rates(collector_binary):
    """`bench collector` (small): both collector runs deliver every record and the JSON has the
    same-run ratio (figures themselves are for the README, not asserted)."""
    from collectors.otel.bench_collector import run_collector_bench

    lines = [json.loads(line)["lines"] for line in (DATA / "seed_test.jsonl").read_text(encoding="utf-8").splitlines()]
    result = run_collector_bench(lines=[x for seq in lines for x in seq], records=600, batch=100, keys=5,
                                 threads=1, with_bridge=True)
    assert result["records"] == 600
    for name in ("collector_plain_records_per_s", "collector_logllm_records_per_s", "bridge_records_per_s"):
        assert result[name] > 0, result
    assert result["logllm_to_plain_ratio"] == round(result["collector_logllm_records_per_s"]
                                                    / result["collector_plain_records_per_s"], 3)
