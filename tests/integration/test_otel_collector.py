"""The real OpenTelemetry Collector (otelcol-logllm, built from Go modules) end to end.

file_log receiver (a temp file, start_at: beginning) -> batch -> otlp_grpc exporter -> a Python
OTLP/gRPC LogsService receiver started here on port 0. The binary is built once per session by
scripts/build-otelcol (cached outside the repository; a cold build takes minutes). Without Go they
fail under CI=true, and skip with the reason elsewhere (tests/conftest.py `require`).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc

from collectors.otel.bridge import any_value_text
from collectors.otel.collector_process import CollectorProcess, build_collector, find_go, free_port
from tests.conftest import require

pytestmark = pytest.mark.collector


@pytest.fixture(scope="session")
def otelcol_binary():
    require(find_go(), "the Go toolchain ('go' on PATH, /usr/local/go/bin/go or GO=PATH) to build the "
                       "OpenTelemetry Collector (scripts/build-otelcol)")
    from tests.progress import announce

    announce("building the OpenTelemetry Collector (scripts/build-otelcol; cached after the first, ~5 min cold)")
    binary = build_collector()
    announce(f"collector ready: {binary}")
    return binary


class OtlpLogsReceiver(logs_service_pb2_grpc.LogsServiceServicer):
    """An OTLP/gRPC logs endpoint on 127.0.0.1:<port 0> that records what it accepts.

    `fail_calls`: indexes (0-based, in arrival order) of Export calls answered with UNAVAILABLE
    instead; a rejected request's records are not recorded.
    """

    def __init__(self, fail_calls=()):
        self.fail_calls = set(fail_calls)
        self.calls = 0
        self.failed = 0
        self.records = []  # (body, attributes) in arrival order
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def Export(self, request, context):  # noqa: N802 (gRPC method name)
        with self._cond:
            index = self.calls
            self.calls += 1
            if index in self.fail_calls:
                self.failed += 1
                context.abort(grpc.StatusCode.UNAVAILABLE, f"test: call {index} rejected")
            for resource_logs in request.resource_logs:
                for scope_logs in resource_logs.scope_logs:
                    for record in scope_logs.log_records:
                        attrs = {kv.key: any_value_text(kv.value) for kv in record.attributes}
                        self.records.append((record.body.string_value, attrs))
            self._cond.notify_all()
        return logs_service_pb2.ExportLogsServiceResponse()

    def bodies(self):
        with self._lock:
            return [body for body, _ in self.records]

    def wait_for(self, count, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.records) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(grace=1).wait(5)


def collector_config(log_file, receiver_port, health_port, retry_on_failure=None):
    retry = retry_on_failure or {"enabled": True}
    retry_yaml = "{" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                                 for k, v in retry.items()) + "}"
    return f"""
receivers:
  file_log:
    include: [{log_file}]
    start_at: beginning
processors:
  batch:
    timeout: 200ms
    send_batch_size: 50
    send_batch_max_size: 50
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:{receiver_port}
    tls: {{insecure: true}}
    timeout: 5s
    retry_on_failure: {retry_yaml}
    sending_queue: {{enabled: true, num_consumers: 1}}
extensions:
  health_check:
    endpoint: 127.0.0.1:{health_port}
service:
  extensions: [health_check]
  telemetry:
    metrics: {{level: none}}
    logs: {{level: info}}
  pipelines:
    logs:
      receivers: [file_log]
      processors: [batch]
      exporters: [otlp_grpc]
"""


def write_log(path, n):
    lines = [f"2024-05-01T12:00:{i % 60:02d}Z INFO svc-{i % 7} request {i} done in {i * 3 % 97}ms ü"
             for i in range(n)]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return lines


def run_pipeline(binary, tmp_path, receiver, n_lines, retry_on_failure=None, wait=45.0):
    log_file = tmp_path / "app.log"
    lines = write_log(log_file, n_lines)
    health_port = free_port()
    config = collector_config(log_file, receiver.port, health_port, retry_on_failure)
    with CollectorProcess(config, binary, health_port=health_port) as col:
        arrived = receiver.wait_for(len(lines), wait)
        # Give any duplicate a chance to show up before the collector shuts down.
        time.sleep(0.5)
    log = col.log_text()
    assert arrived, (f"only {len(receiver.records)}/{len(lines)} lines arrived in {wait:.0f}s "
                     f"(calls {receiver.calls}, failed {receiver.failed}); collector log:\n{log[-6000:]}")
    assert col.returncode == 0, f"collector exit code {col.returncode}; log:\n{log[-6000:]}"
    return lines, log


def test_filelog_to_otlp_grpc_every_line_once_in_order(otelcol_binary, tmp_path):
    with OtlpLogsReceiver() as receiver:
        lines, _ = run_pipeline(otelcol_binary, tmp_path, receiver, 230)
    assert receiver.bodies() == lines  # all, once each, in file order, bodies intact
    assert receiver.calls >= 230 // 50  # batches of at most 50: several Export calls
    assert all(attrs.get("log.file.name") == "app.log" for _, attrs in receiver.records)


def test_retry_on_unavailable_delivers_every_line_exactly_once(otelcol_binary, tmp_path):
    """The receiver rejects Export calls 0, 1, 2 and 4 with UNAVAILABLE; the exporter retries.

    OTLP export is at-least-once: a batch is resent when the exporter does not see a success, so
    a receiver that accepted a batch but whose answer was lost (timeout, dropped connection) gets
    it twice. Here the rejection is explicit and nothing of a rejected call is kept, so every line
    must arrive exactly once, and (one sending-queue consumer: a retried batch blocks those after
    it) in file order.
    """
    retry = {"enabled": True, "initial_interval": "100ms", "max_interval": "500ms",
             "max_elapsed_time": "30s", "multiplier": 1.5, "randomization_factor": 0}
    with OtlpLogsReceiver(fail_calls={0, 1, 2, 4}) as receiver:
        lines, log = run_pipeline(otelcol_binary, tmp_path, receiver, 180, retry_on_failure=retry)
    assert receiver.failed == 4
    assert receiver.calls >= 4 + 180 // 50
    bodies = receiver.bodies()
    missing = set(lines) - set(bodies)
    assert not missing, f"{len(missing)} lines never arrived"
    assert len(bodies) == len(lines), f"{len(bodies) - len(lines)} duplicate deliveries"
    assert bodies == lines
    assert "retry" in log.lower() or "Exporting failed" in log, log[-3000:]


def test_otlp_receiver_to_otlp_grpc_exporter(otelcol_binary):
    """The collector's own OTLP/gRPC receiver (the bridge's way back in) forwards what it gets."""
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.logs.v1 import logs_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2

    otlp_port, health_port = free_port(), free_port()
    with OtlpLogsReceiver() as receiver:
        config = f"""
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{otlp_port}}}
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:{receiver.port}
    tls: {{insecure: true}}
    sending_queue: {{enabled: true, num_consumers: 1}}
extensions:
  health_check: {{endpoint: 127.0.0.1:{health_port}}}
service:
  extensions: [health_check]
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    logs: {{receivers: [otlp], exporters: [otlp_grpc]}}
"""
        records = [logs_pb2.LogRecord(body=common_pb2.AnyValue(string_value=f"line {i}"),
                                      attributes=[common_pb2.KeyValue(
                                          key="logllm.score", value=common_pb2.AnyValue(string_value=str(i)))])
                   for i in range(20)]
        request = logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
            resource=resource_pb2.Resource(attributes=[common_pb2.KeyValue(
                key="service.name", value=common_pb2.AnyValue(string_value="test"))]),
            scope_logs=[logs_pb2.ScopeLogs(log_records=records)])])
        with CollectorProcess(config, otelcol_binary, health_port=health_port) as col:
            with grpc.insecure_channel(f"127.0.0.1:{otlp_port}") as channel:
                logs_service_pb2_grpc.LogsServiceStub(channel).Export(request, timeout=10)
            arrived = receiver.wait_for(20, 30)
        assert arrived, col.log_text()[-6000:]
    assert receiver.bodies() == [f"line {i}" for i in range(20)]
    assert [attrs["logllm.score"] for _, attrs in receiver.records] == [str(i) for i in range(20)]


# ------------------------------------------------------------------ the bridge between two pipelines
RETRY_120S = """    timeout: 5s
    retry_on_failure: {enabled: true, initial_interval: 100ms, max_interval: 1s, max_elapsed_time: 120s}
"""


def ordered_exporter(name, port, extra=""):
    """An otlp_grpc exporter (YAML) with one queue consumer: batches go out in order."""
    return f"""  otlp_grpc/{name}:
    endpoint: 127.0.0.1:{port}
    tls: {{insecure: true}}
{extra}    sending_queue: {{enabled: true, num_consumers: 1}}
"""


def two_pipeline_config(log_file, bridge_port, otlp_port, out_port, health_port, operators=""):
    """configs/otelcol.yaml's pattern: file → bridge (annotates) → collector's OTLP receiver → out."""
    return f"""
receivers:
  file_log:
    include: [{log_file}]
    start_at: beginning
    poll_interval: 100ms
{operators}  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{otlp_port}}}
processors:
  batch: {{timeout: 200ms, send_batch_size: 50, send_batch_max_size: 50}}
exporters:
{ordered_exporter("logllm", bridge_port, RETRY_120S)}{ordered_exporter("out", out_port)}extensions:
  health_check: {{endpoint: 127.0.0.1:{health_port}}}
service:
  extensions: [health_check]
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    logs/in: {{receivers: [file_log], processors: [batch], exporters: [otlp_grpc/logllm]}}
    logs/annotated: {{receivers: [otlp], exporters: [otlp_grpc/out]}}
"""


class BridgeProcess:
    """`logllm-plugin otel bridge` as a real process (so it can be killed with SIGKILL).

    Port 0 (the default) lets the bridge bind a free port itself and the test reads it from the
    "bridge listening" log: a port a test picked and released may be taken again before the bridge
    binds it (an outgoing connection's ephemeral port is enough). A restart passes the old port.
    """

    def __init__(self, forward_port, spool, model_dir, port=0, key_attribute="log.file.name", idle_s=0.5,
                 http_port=None):
        import subprocess
        import sys

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "logllm_plugin", "otel", "bridge", "--listen", f"127.0.0.1:{port}",
             "--forward", f"127.0.0.1:{forward_port}", "--model", str(model_dir), "--spool", str(spool),
             "--key-attribute", key_attribute, "--idle-s", str(idle_s), "--metrics-port", "0",
             *(["--listen-http", f"127.0.0.1:{http_port}"] if http_port is not None else [])],
            stderr=subprocess.PIPE, text=True)
        ready = threading.Event()
        self.metrics_url = self.port = self.http_port = None
        self.stderr_lines = []

        def read():
            import json

            for line in self.proc.stderr:
                self.stderr_lines.append(line)
                if '"bridge listening"' in line:
                    record = json.loads(line)
                    self.port, self.http_port = record["port"], record["http_port"]
                if '"bridge metrics"' in line:  # logged after "bridge listening": the bridge is up
                    self.metrics_url = json.loads(line)["url"]
                    ready.set()
            ready.set()  # stderr closed: the bridge exited

        threading.Thread(target=read, daemon=True).start()
        ready.wait(120)
        assert self.metrics_url, (f"the bridge did not start (exit status {self.proc.poll()}):\n"
                                  + "".join(self.stderr_lines)[-4000:])

    def metric(self, name):
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        return sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples if sample.name == name)

    def kill(self):
        self.proc.kill()
        self.proc.wait(10)

    def stop(self):
        import signal

        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0


def append_lines(path, start, n):
    lines = [f"worker step {i} finished in {i % 13} ms" for i in range(start, start + n)]
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(line + "\n" for line in lines))
    return lines


def test_collector_bridge_collector_annotates_every_line_once_in_order(otelcol_binary, seed_model_dir, tmp_path):
    log_file = tmp_path / "app.log"
    log_file.write_text("")
    otlp_port, health_port = free_port(), free_port()
    with OtlpLogsReceiver() as out:
        bridge = BridgeProcess(otlp_port, tmp_path / "spool", seed_model_dir)
        config = two_pipeline_config(log_file, bridge.port, otlp_port, out.port, health_port)
        with CollectorProcess(config, otelcol_binary, health_port=health_port) as col:
            lines = append_lines(log_file, 0, 150)
            arrived = out.wait_for(150, 90)
            time.sleep(0.5)
            forwarded = bridge.metric("logllm_bridge_records_forwarded_total")
            pending = bridge.metric("logllm_bridge_spool_pending_bytes")
        bridge.stop()
    assert arrived, col.log_text()[-4000:]
    assert out.bodies() == lines  # once each, in order
    attrs = [a for _, a in out.records]
    assert {a["logllm.status"] for a in attrs} == {"ok"}
    assert {a["logllm.anomaly.label"] for a in attrs} <= {"normal", "anomalous"}
    assert all(a["logllm.sequence.key"] == "app.log" for a in attrs)
    assert (forwarded, pending) == (150, 0)  # the bridge's /metrics agree with what arrived


def test_killing_and_restarting_the_bridge_mid_stream_loses_nothing(otelcol_binary, seed_model_dir, tmp_path):
    log_file = tmp_path / "app.log"
    log_file.write_text("")
    otlp_port, health_port = free_port(), free_port()
    spool = tmp_path / "spool"
    with OtlpLogsReceiver() as out:
        bridge = BridgeProcess(otlp_port, spool, seed_model_dir)
        bridge_port = bridge.port
        config = two_pipeline_config(log_file, bridge_port, otlp_port, out.port, health_port)
        with CollectorProcess(config, otelcol_binary, health_port=health_port) as col:
            lines = append_lines(log_file, 0, 120)
            assert out.wait_for(20, 60)
            bridge.kill()  # SIGKILL: no flush, no goodbye
            lines += append_lines(log_file, 120, 120)
            time.sleep(1.0)  # the collector is now retrying against a dead port
            bridge = BridgeProcess(otlp_port, spool, seed_model_dir, port=bridge_port)  # where the collector retries
            deadline = time.monotonic() + 120
            while set(lines) - set(out.bodies()) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(0.5)
        bridge.stop()
    bodies = out.bodies()
    missing = set(lines) - set(bodies)
    assert not missing, f"{len(missing)} lines lost; collector log:\n{col.log_text()[-4000:]}"
    # At-least-once: only lines the killed bridge had taken (the first 120, written before the kill)
    # may come twice, from its spool's replay; never three times, and the lines written while it
    # was down reach the restarted bridge only through the collector's retries: exactly once each.
    counts = Counter(bodies)
    assert max(counts.values()) <= 2, counts.most_common(3)
    twice = {line for line, n in counts.items() if n == 2}
    assert twice <= set(lines[:120]), sorted(twice - set(lines[:120]))[:3]
    assert all(counts[line] == 1 for line in lines[120:])
    assert len(bodies) == len(lines) + len(twice)


# The collector parses "seq=<id> <message>" lines: the id becomes the attribute the bridge keys
# sequences on, the message becomes the body the model reads.
SEQ_OPERATORS = """    operators:
      - {type: regex_parser, regex: '^seq=(?P<seq>\\S+) (?P<message>.*)$'}
      - {type: move, from: attributes.message, to: body}
"""


def test_known_anomalous_sequences_come_out_anomalous_through_the_collector(otelcol_binary, seed_model_dir, tmp_path):
    """Labeled sequences, their lines interleaved in one file, go file_log → bridge → collector.

    Every line must come back once, in order within its sequence, grouped by the parsed key into
    one sequence each, with the verdict the same model gives in-process on the same lines; and
    the labeled anomalies must come out `anomalous` (the normal ones `normal`).
    """
    import json

    from collectors.scoring import local_scorer
    from tests.conftest import DATA

    rows = [json.loads(line) for line in (DATA / "seed_test.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = [r for r in rows if len(r["lines"]) <= 15]  # the bridge's --max-lines: one sequence each
    chosen = [r for r in rows if r["label"] == 1][:15] + [r for r in rows if r["label"] == 0][:15]
    expected = {f"s{i}": r for i, r in enumerate(chosen)}
    # Round-robin interleaving: each sequence's lines spread over many Export requests.
    file_lines = [f"seq={sid} {r['lines'][k]}" for k in range(15)
                  for sid, r in expected.items() if k < len(r["lines"])]
    total = len(file_lines)

    log_file = tmp_path / "app.log"
    log_file.write_text("")
    otlp_port, health_port = free_port(), free_port()
    with OtlpLogsReceiver() as out:
        bridge = BridgeProcess(otlp_port, tmp_path / "spool", seed_model_dir, key_attribute="seq", idle_s=2.0)
        config = two_pipeline_config(log_file, bridge.port, otlp_port, out.port, health_port, SEQ_OPERATORS)
        with CollectorProcess(config, otelcol_binary, health_port=health_port) as col:
            log_file.write_text("".join(line + "\n" for line in file_lines), encoding="utf-8")
            arrived = out.wait_for(total, 90)
            time.sleep(0.5)
        bridge.stop()
    assert arrived, f"{len(out.records)}/{total} arrived; collector log:\n{col.log_text()[-4000:]}"
    assert len(out.records) == total

    by_seq = {}
    for body, attrs in out.records:
        by_seq.setdefault(attrs["seq"], []).append((body, attrs))
    assert set(by_seq) == set(expected)
    local = local_scorer(str(seed_model_dir))
    verdicts = local([expected[sid]["lines"] for sid in expected], 60)
    flagged = {}
    for (sid, row), verdict in zip(expected.items(), verdicts):
        got = by_seq[sid]
        assert [body for body, _ in got] == row["lines"], sid  # once each, in order
        assert len({a["logllm.sequence.id"] for _, a in got}) == 1, f"{sid} was cut into several sequences"
        assert [int(a["logllm.sequence.position"]) for _, a in got] == list(range(len(got)))
        labels = {a["logllm.anomaly.label"] for _, a in got}
        assert labels == {verdict.label}, (sid, labels, verdict.label)
        assert {a["logllm.status"] for _, a in got} == {"ok"}
        flagged[sid] = verdict.label == "anomalous"
    anomalies = [sid for sid, r in expected.items() if r["label"] == 1]
    normals = [sid for sid, r in expected.items() if r["label"] == 0]
    assert sum(flagged[s] for s in anomalies) >= 0.9 * len(anomalies), flagged
    assert sum(flagged[s] for s in normals) <= 0.1 * len(normals), flagged


def sharded_config(files, ports, otlp_port, out_port, health_port):
    """One pipeline per source file, each to its own bridge; one pipeline for what they forward."""
    return f"""
receivers:
  file_log/api: {{include: [{files['api']}], start_at: beginning, poll_interval: 100ms}}
  file_log/db: {{include: [{files['db']}], start_at: beginning, poll_interval: 100ms}}
  otlp:
    protocols:
      grpc: {{endpoint: 127.0.0.1:{otlp_port}}}
processors:
  batch: {{timeout: 200ms, send_batch_size: 50, send_batch_max_size: 50}}
exporters:
{ordered_exporter("bridge-api", ports["api"])}{ordered_exporter("bridge-db", ports["db"])}{ordered_exporter("out", out_port)}extensions:
  health_check: {{endpoint: 127.0.0.1:{health_port}}}
service:
  extensions: [health_check]
  telemetry: {{metrics: {{level: none}}}}
  pipelines:
    logs/api: {{receivers: [file_log/api], processors: [batch], exporters: [otlp_grpc/bridge-api]}}
    logs/db: {{receivers: [file_log/db], processors: [batch], exporters: [otlp_grpc/bridge-db]}}
    logs/annotated: {{receivers: [otlp], exporters: [otlp_grpc/out]}}
"""


def test_two_bridges_each_own_a_share_of_the_sources_and_nothing_is_lost(otelcol_binary, seed_model_dir, tmp_path):
    """Scale-out without the load_balancing exporter: one collector pipeline per group of sources,
    each exporting to its own bridge; both bridges forward to the same annotated pipeline. A
    sequence's lines come from one source, so each bridge sees whole sequences."""
    files = {name: tmp_path / f"{name}.log" for name in ("api", "db")}
    for path in files.values():
        path.write_text("")
    otlp_port, health_port = free_port(), free_port()
    with OtlpLogsReceiver() as out:
        bridges = {name: BridgeProcess(otlp_port, tmp_path / f"spool-{name}", seed_model_dir) for name in files}
        ports = {name: bridge.port for name, bridge in bridges.items()}
        config = sharded_config(files, ports, otlp_port, out.port, health_port)
        with CollectorProcess(config, otelcol_binary, health_port=health_port) as col:
            lines = {name: append_lines(path, 1000 * k, 90) for k, (name, path) in enumerate(files.items())}
            arrived = out.wait_for(180, 90)
            time.sleep(0.5)
            forwarded = {name: bridge.metric("logllm_bridge_records_forwarded_total")
                         for name, bridge in bridges.items()}
        for bridge in bridges.values():
            bridge.stop()
    assert arrived, col.log_text()[-4000:]
    assert len(out.records) == 180
    assert forwarded == {"api": 90, "db": 90}  # each bridge scored its own share
    for name, path in files.items():
        mine = [(body, attrs) for body, attrs in out.records if attrs["logllm.sequence.key"] == path.name]
        assert [body for body, _ in mine] == lines[name]  # once each, in order per source
        assert {a["logllm.status"] for _, a in mine} == {"ok"}
        positions = [int(a["logllm.sequence.position"]) for _, a in mine]
        assert positions[:15] == list(range(15))  # whole sequences, not cut between bridges


def test_a_collector_exporting_otlp_http_reaches_the_bridge_and_every_line_comes_back_once(
        otelcol_binary, seed_model_dir, tmp_path):
    """The collector's otlp_http exporter (protobuf, gzip by default) → the bridge's OTLP/HTTP."""
    log_file = tmp_path / "app.log"
    log_file.write_text("")
    otlp_port, health_port = free_port(), free_port()
    with OtlpLogsReceiver() as out:
        bridge = BridgeProcess(otlp_port, tmp_path / "spool", seed_model_dir, http_port=0)
        bridge_port, http_port = bridge.port, bridge.http_port
        config = two_pipeline_config(log_file, bridge_port, otlp_port, out.port, health_port)
        config = config.replace(f"""  otlp_grpc/logllm:
    endpoint: 127.0.0.1:{bridge_port}
    tls: {{insecure: true}}""", f"""  otlp_http/logllm:
    endpoint: http://127.0.0.1:{http_port}""").replace("exporters: [otlp_grpc/logllm]", "exporters: [otlp_http/logllm]")
        assert "otlp_http/logllm" in config and "otlp_grpc/logllm" not in config
        with CollectorProcess(config, otelcol_binary, health_port=health_port) as col:
            lines = append_lines(log_file, 0, 120)
            arrived = out.wait_for(120, 90)
            time.sleep(0.5)
            accepted = bridge.metric("logllm_bridge_export_requests_total")
        bridge.stop()
    assert arrived, col.log_text()[-4000:]
    assert out.bodies() == lines
    assert {a["logllm.status"] for _, a in out.records} == {"ok"}
    assert accepted >= 120 // 50  # all over HTTP: this collector has no exporter to the gRPC port
