"""Read labeled (or normal) sequences from an index for training (DESIGN §5, §6).

Documents matching a query and/or a time range are read with a sliced point in time (slices in
parallel threads), ordered by time, and grouped into sequences by key exactly as files are
(`group_records`). A label field marks anomalous lines (1/true/"anomalous"...); a sequence
is anomalous when any of its lines is.
"""
from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Optional

from collectors.elastic.fields import TIMESTAMP, get_field
from logllm_plugin.records import LogRecord, LogSequence
from logllm_plugin.sequencer import SequencerConfig, group_records

logger = logging.getLogger(__name__)

ANOMALOUS_VALUES = {"1", "true", "anomalous", "anomaly", "abnormal", "yes"}
NORMAL_VALUES = {"0", "false", "normal", "no", "-"}


class HistoryError(ValueError):
    """The history query is malformed or matched nothing usable."""


@dataclass
class HistoryQuery:
    index: str
    key_fields: tuple[str, ...]
    message_field: str = "message"
    time_field: str = TIMESTAMP
    query_json: Optional[str] = None
    from_ms: Optional[int] = None
    to_ms: Optional[int] = None
    label_field: Optional[str] = None
    slices: int = 2
    page_size: int = 2000

    def query(self) -> dict[str, Any]:
        filters: list[dict] = []
        if self.query_json:
            try:
                user = json.loads(self.query_json)
            except ValueError as exc:
                raise HistoryError(f"--query is not JSON: {exc}") from None
            if not isinstance(user, dict):
                raise HistoryError("--query must be a JSON object (an Elasticsearch query clause)")
            filters.append(user.get("query", user))
        if self.from_ms is not None or self.to_ms is not None:
            bounds: dict[str, Any] = {"format": "epoch_millis"}
            if self.from_ms is not None:
                bounds["gte"] = self.from_ms
            if self.to_ms is not None:
                bounds["lt"] = self.to_ms
            filters.append({"range": {self.time_field: bounds}})
        if not filters:
            raise HistoryError("give --query and/or --from/--to: refusing to read a whole index by accident")
        return {"bool": {"filter": filters}}


def line_label(value: Any) -> Optional[int]:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ANOMALOUS_VALUES:
        return 1
    if text in NORMAL_VALUES:
        return 0
    raise HistoryError(f"label value {value!r} is neither anomalous ({sorted(ANOMALOUS_VALUES)}) "
                       f"nor normal ({sorted(NORMAL_VALUES)})")


def read_history(client, spec: HistoryQuery, sequencer: Optional[SequencerConfig] = None) -> list[LogSequence]:
    query = spec.query()
    fields = sorted({spec.message_field, spec.time_field, *spec.key_fields, *([spec.label_field] if spec.label_field else [])})
    client.refresh(spec.index)
    pit = client.open_pit(spec.index)
    try:
        def read_slice(n: int) -> list[tuple]:
            rows, after = [], None
            while True:
                body: dict[str, Any] = {"pit": {"id": pit, "keep_alive": "5m"}, "size": spec.page_size, "query": query,
                                        "_source": fields, "track_total_hits": False,
                                        "sort": [{spec.time_field: {"order": "asc", "unmapped_type": "date"}},
                                                 client.tiebreaker_sort()]}
                if spec.slices > 1:
                    body["slice"] = {"id": n, "max": spec.slices}
                if after is not None:
                    body["search_after"] = after
                hits = client.search(body)["hits"]["hits"]
                if not hits:
                    return rows
                for hit in hits:
                    rows.append((hit["sort"][0], hit["_id"], hit.get("_source") or {}))
                after = hits[-1]["sort"]

        with ThreadPoolExecutor(max_workers=spec.slices) as pool:
            parts = list(pool.map(read_slice, range(spec.slices)))
    finally:
        client.close_pit(pit)
    rows = sorted((row for part in parts for row in part), key=lambda r: (r[0], r[1]))
    if not rows:
        raise HistoryError(f"{spec.index}: the query matched no document")
    records = []
    for time_ms, _, source in rows:
        values = [get_field(source, f) for f in spec.key_fields]
        message = get_field(source, spec.message_field)
        records.append(LogRecord(message="" if message is None else str(message),
                                 key="|".join(str(v) for v in values if v is not None) or None,
                                 timestamp_s=time_ms / 1000.0 if isinstance(time_ms, (int, float)) else None,
                                 label=line_label(get_field(source, spec.label_field)) if spec.label_field else None))
    sequences = list(group_records(records, sequencer))
    logger.info("%s: %d documents → %d sequences", spec.index, len(records), len(sequences))
    return sequences

