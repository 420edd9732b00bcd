"""Fuzzing the bridge's durable spool (torn and damaged files) and the SDK processor (odd records).

The promises: a spool reopened after a crash mid-write, or over damaged bytes, never crashes and
hands back exactly the entries written before the damage, in order, and new appends after it are
not hidden by the damage at the next reopen; LogLLMProcessor.on_emit never raises whatever the
record's body and attributes (non-string bodies, lone surrogates from surrogateescape decoding,
control characters), and passes every record on exactly once.
"""
from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from collectors.otel import LogLLMProcessor, ProcessorConfig
from collectors.scoring import local_scorer
from collectors.otel.spool import Spool
from tests.reliability.conftest import fuzz
from logllm_plugin.sequencer import SequencerConfig

pytestmark = pytest.mark.reliability


@fuzz(120)
@given(payloads=st.lists(st.binary(max_size=300), min_size=1, max_size=12), cut=st.integers(0, 5000),
       flip=st.one_of(st.none(), st.integers(0, 5000)), segment_bytes=st.sampled_from([64, 1 << 20]))
def test_a_damaged_spool_reopens_with_the_intact_prefix_and_keeps_appending(tmp_path_factory, payloads, cut,
                                                                            flip, segment_bytes):
    """Promise: cut the newest segment anywhere (a crash mid-write) and/or flip one byte in it; the
    reopened spool hands back an in-order prefix of what was written (entirely, when only the cut
    tail was damaged), and what is appended after that survives the next reopen."""
    directory = tmp_path_factory.mktemp("spool")
    spool = Spool(directory, segment_bytes=segment_bytes)
    for payload in payloads:
        spool.append(payload)
    spool.close()
    newest = max(directory.glob("segment-*.log"), key=lambda p: int(p.stem.split("-")[1]))
    data = bytearray(newest.read_bytes())
    if flip is not None and data:
        data[flip % len(data)] ^= 0xFF
    kept_size = max(0, len(data) - cut % (len(data) + 1))
    newest.write_bytes(bytes(data[:kept_size]))

    reopened = Spool(directory, segment_bytes=segment_bytes)
    got = []
    while (entry := reopened.take(0)) is not None:
        got.append(entry[1])
    assert got == payloads[: len(got)]  # a prefix: nothing invented, reordered or skipped over
    if flip is None and cut % (len(data) + 1) == 0:
        assert got == payloads  # nothing damaged, nothing lost
    reopened.append(b"after the damage")
    reopened.close()
    again = Spool(directory, segment_bytes=segment_bytes)
    seen = []
    while (entry := again.take(0)) is not None:
        seen.append(entry[1])
    again.close()
    assert seen == got + [b"after the damage"]


bodies = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=20).map(lambda b: b.decode("utf-8", "surrogateescape")),  # lone surrogates
    st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.binary(max_size=20),
    st.lists(st.text(max_size=5), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
attribute_values = st.one_of(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True),
                             st.booleans(), st.lists(st.text(max_size=5), max_size=3))


@pytest.fixture(scope="module")
def seed_scorer(seed_model_dir):
    from logllm_plugin.detector import Detector

    return local_scorer(detector=Detector.load(seed_model_dir, device="cpu"))


@fuzz(40)
@given(records=st.lists(st.tuples(bodies, st.dictionaries(st.text(max_size=10).filter(lambda k: k not in ("n", "service.name")),
                                                        attribute_values, max_size=3),
                                  st.sampled_from(["a", "b", "c"])), min_size=1, max_size=40))
@example(records=[("file /tmp/\udcff\udcfe.log opened", {}, "a")] * 6)  # regression: tokenizer failed the batch
def test_the_processor_passes_every_odd_record_on_exactly_once_annotated(seed_scorer, records):
    """Promise: on_emit never raises for odd bodies and attributes, and after force_flush every
    record has been passed on exactly once with logllm.status ok (scored by a real model)."""
    exporter = InMemoryLogRecordExporter()
    processor = LogLLMProcessor(SimpleLogRecordProcessor(exporter), scorer=seed_scorer,
                                config=ProcessorConfig(SequencerConfig(max_lines=5, idle_s=0.2), latency_budget_s=30))
    provider = LoggerProvider()
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("app")
    for n, (body, attributes, service) in enumerate(records):
        logger.emit(body=body, attributes={**attributes, "service.name": service, "n": n})
    assert processor.force_flush(60_000)
    provider.shutdown()
    out = [dict(r.log_record.attributes) for r in exporter.get_finished_logs()]
    assert sorted(a["n"] for a in out) == list(range(len(records)))
    assert {a["logllm.status"] for a in out} == {"ok"}
    for service in "abc":
        order = [a["n"] for a in out if a["service.name"] == service]
        assert order == sorted(order)


@pytest.mark.parametrize("own_attributes, expected", [
    (128, []),  # full: no room at all
    (125, ["logllm.status", "logllm.anomaly.label", "logllm.anomaly.score"]),
    (10, None),  # room for everything
])
def test_a_record_at_the_sdk_attribute_limit_keeps_all_its_own_attributes(own_attributes, expected):
    """Promise (regression): the SDK evicts a full record's oldest attributes to make room; the
    processor never lets its annotations push out the application's attributes: it adds what fits,
    status first, and counts the rest."""
    from logllm_plugin.records import Verdict

    def scorer(sequences, timeout_s):
        return [Verdict(id=str(n), label="normal", score=0.1, category="normal", evidence=[], novel_templates=0)
                for n, _ in enumerate(sequences)]

    exporter = InMemoryLogRecordExporter()
    processor = LogLLMProcessor(SimpleLogRecordProcessor(exporter), scorer=scorer, config=ProcessorConfig(SequencerConfig(max_lines=1)))
    provider = LoggerProvider()
    provider.add_log_record_processor(processor)
    own = {f"app.{i}": i for i in range(own_attributes)}
    provider.get_logger("app").emit(body="order placed", attributes=own)
    assert processor.force_flush(30_000)
    provider.shutdown()
    attributes = dict(exporter.get_finished_logs()[0].log_record.attributes)
    assert {k: v for k, v in attributes.items() if k.startswith("app.")} == own
    added = [k for k in attributes if k.startswith("logllm.")]
    every = 12  # status, label, score, category, sequence id/key/position, evidence, model version, familiarity,
    # suppressed, closed_by
    if expected is None:
        assert len(added) == every and processor.stats.annotations_dropped == 0
    else:
        assert added == expected and processor.stats.annotations_dropped == every - len(expected)
