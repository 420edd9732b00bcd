"""Bad input fuzzing over the OTLP bridge (collectors/otel/bridge.py), end to end over gRPC.

The promise: any bytes sent to LogsService/Export are answered (OK or INVALID_ARGUMENT with a
reason), never crash the bridge; every record of every accepted request reaches the downstream
exactly once, annotated, whatever its body and attribute values (any AnyValue kind, NaN, bytes
that are not UTF-8, odd trace ids, nested lists and maps).
"""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as svc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as svc_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

from collectors.otel.bridge import EXPORT, OtlpBridge
from collectors.scoring import local_scorer
from tests.reliability.conftest import fuzz, wait_for
from logllm_plugin.sequencer import SequencerConfig

pytestmark = [pytest.mark.reliability, pytest.mark.server]


class Receiver(svc_grpc.LogsServiceServicer):
    """Downstream OTLP receiver that keeps every record it is given."""

    def __init__(self):
        self.records: list[logs_pb2.LogRecord] = []
        self.lock = threading.Lock()
        self.server = grpc.server(ThreadPoolExecutor(4))
        svc_grpc.add_LogsServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def Export(self, request, context):
        with self.lock:
            self.records.extend(r for rl in request.resource_logs for sl in rl.scope_logs for r in sl.log_records)
        return svc.ExportLogsServiceResponse()

    def tagged(self, example_id: str) -> list[logs_pb2.LogRecord]:
        with self.lock:
            return [r for r in self.records if attr(r, "fuzz.example") == example_id]


def attr(record, key):
    values = [kv.value for kv in record.attributes if kv.key == key]
    if not values:
        return None
    kind = values[-1].WhichOneof("value")
    return getattr(values[-1], kind) if kind else None


@pytest.fixture(scope="module")
def bridge(seed_model_dir, tmp_path_factory):
    from logllm_plugin.detector import Detector

    receiver = Receiver()
    scorer = local_scorer(detector=Detector.load(seed_model_dir, device="cpu"))
    b = OtlpBridge(listen="127.0.0.1:0", forward=f"127.0.0.1:{receiver.port}", scorer=scorer,
                   spool_dir=tmp_path_factory.mktemp("spool"), sequencer=SequencerConfig(max_lines=5, idle_s=0.2), tick_s=0.02).start()
    b.receiver = receiver
    b.channel = grpc.insecure_channel(f"127.0.0.1:{b.port}")
    yield b
    b.channel.close()
    b.stop(grace_s=2)
    receiver.server.stop(0)


def export_raw(bridge, payload: bytes):
    call = bridge.channel.unary_unary(EXPORT, request_serializer=None,
                                      response_deserializer=svc.ExportLogsServiceResponse.FromString)
    try:
        return grpc.StatusCode.OK, call(payload, timeout=20)
    except grpc.RpcError as exc:
        return exc.code(), exc.details()


def records_in(payload: bytes) -> int:
    request = svc.ExportLogsServiceRequest.FromString(payload)
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


@fuzz(150)
@given(data=st.binary(max_size=2000))
@example(data=b"\xff\xff\xff not protobuf")
@example(data=b"")  # an empty request is a valid one with no records
@example(data=b"\x0a\x00")  # one empty ResourceLogs
@example(data=b"\x0a\x06\x12\x04\x12\x02\x0a\x00")  # resource → scope → one empty record
def test_arbitrary_bytes_are_answered_and_accepted_records_all_arrive(bridge, data):
    """Promise: Export answers any bytes with OK or INVALID_ARGUMENT (with a reason); when it says OK,
    every record in those bytes reaches the downstream (nothing accepted is dropped)."""
    before = len(bridge.receiver.records)
    code, answer = export_raw(bridge, data)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), (code, answer)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert "not a valid ExportLogsServiceRequest" in answer
        return
    expected = records_in(data)
    wait_for(lambda: len(bridge.receiver.records) >= before + expected, 20, f"{expected} records downstream")


# Any AnyValue, nested, with the odd corners: NaN/inf doubles, bytes that are not UTF-8, empty values.
any_value = st.recursive(
    st.one_of(
        st.builds(common_pb2.AnyValue),  # no value set at all
        st.text(max_size=40).map(lambda s: common_pb2.AnyValue(string_value=s)),
        st.booleans().map(lambda b: common_pb2.AnyValue(bool_value=b)),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: common_pb2.AnyValue(int_value=i)),
        st.floats(allow_nan=True, allow_infinity=True).map(lambda f: common_pb2.AnyValue(double_value=f)),
        st.binary(max_size=40).map(lambda b: common_pb2.AnyValue(bytes_value=b)),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(
            lambda vs: common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=vs))),
        st.lists(st.tuples(st.text(max_size=8), children), max_size=3).map(
            lambda kvs: common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(
                values=[common_pb2.KeyValue(key=k, value=v) for k, v in kvs]))),
    ),
    max_leaves=8,
)
attr_key = st.text(max_size=12).filter(lambda k: not k.startswith(("logllm.", "fuzz.")))
attributes = st.lists(st.tuples(attr_key, any_value), max_size=4)
record_specs = st.tuples(
    any_value,  # body
    attributes,
    st.one_of(st.just(b""), st.binary(min_size=16, max_size=16), st.binary(max_size=20)),  # trace id
    st.integers(0, 2**64 - 1),  # time_unix_nano
    st.integers(0, 30),  # severity number
)
batches = st.lists(  # resource_logs → scope_logs → records
    st.tuples(attributes, st.lists(st.lists(record_specs, max_size=6), min_size=1, max_size=2)),
    min_size=1, max_size=3,
)
_examples = itertools.count()


@fuzz(40)
@given(batch=batches, service=st.one_of(st.none(), st.text(max_size=10)))
def test_every_record_with_odd_values_arrives_exactly_once_and_annotated(bridge, batch, service):
    """Promise: for valid requests whatever their AnyValue bodies and attributes, each record
    reaches the downstream exactly once, with its body and attributes intact and a logllm.status."""
    example_id = f"ex{next(_examples)}"
    request = svc.ExportLogsServiceRequest()
    sent = []
    for resource_attrs, scopes in batch:
        rl = request.resource_logs.add()
        rl.resource.CopyFrom(resource_pb2.Resource(attributes=[common_pb2.KeyValue(key=k, value=v)
                                                               for k, v in resource_attrs]))
        if service is not None:
            rl.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value=service))
        for records in scopes:
            sl = rl.scope_logs.add()
            for body, attrs, trace_id, time_ns, severity in records:
                record = sl.log_records.add(body=body, trace_id=trace_id, time_unix_nano=time_ns,
                                            severity_number=severity)
                for k, v in attrs:
                    record.attributes.add(key=k, value=v)
                record.attributes.add(key="fuzz.example", value=common_pb2.AnyValue(string_value=example_id))
                record.attributes.add(key="fuzz.n", value=common_pb2.AnyValue(int_value=len(sent)))
                sent.append(logs_pb2.LogRecord().FromString(record.SerializeToString()))
    code, answer = export_raw(bridge, request.SerializeToString())
    assert code == grpc.StatusCode.OK, answer
    wait_for(lambda: len(bridge.receiver.tagged(example_id)) >= len(sent), 10, f"{len(sent)} records of {example_id}")
    got = bridge.receiver.tagged(example_id)
    assert sorted(attr(r, "fuzz.n") for r in got) == list(range(len(sent)))  # each exactly once
    by_n = {attr(r, "fuzz.n"): r for r in got}
    for n, original in enumerate(sent):
        forwarded = by_n[n]
        assert forwarded.body.SerializeToString() == original.body.SerializeToString()
        assert forwarded.trace_id == original.trace_id and forwarded.time_unix_nano == original.time_unix_nano
        kept = [kv for kv in forwarded.attributes if not kv.key.startswith("logllm.")]
        assert [kv.SerializeToString() for kv in kept] == [kv.SerializeToString() for kv in original.attributes]
        assert attr(forwarded, "logllm.status") == "ok"
        assert attr(forwarded, "logllm.anomaly.label") in ("normal", "anomalous")
