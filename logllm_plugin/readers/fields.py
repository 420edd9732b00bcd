"""Field values as the wild writes them: labels (0/1, words, loghub's alert column), timestamps
(epoch in any unit, ISO 8601), and the usual names of a record's message, key, time and level."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from logllm_plugin.readers.source import ReadReport
from logllm_plugin.records import LogRecord

MESSAGE_KEYS = ("message", "body", "line", "msg")
KEY_KEYS = ("key", "trace_id", "traceId")
TIME_KEYS = ("timestamp", "@timestamp", "time")
LEVEL_KEYS = ("level", "severity", "severity_text", "severityText")
NESTED_KEYS = ("resource", "attributes")  # flattened; log attributes win over resource ones
LABEL_WORDS = {"0": 0, "1": 1, "normal": 0, "anomalous": 1, "anomaly": 1, "abnormal": 1}


def parse_label(value: Any) -> Optional[int]:
    """0/1 from ints, bools and the usual words; None when absent; ValueError when not 0/1-like."""
    if value is None:
        return None
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in LABEL_WORDS:
        return LABEL_WORDS[value.strip().lower()]
    raise ValueError(f"label {value!r} is not 0/1/normal/anomalous")


def loghub_label(value: Any) -> Optional[int]:
    """loghub's label column (BGL, Thunderbird, Spirit, Liberty): "-" is normal, an alert tag anomalous."""
    if value is None or not str(value).strip():
        return None
    return 0 if str(value).strip() == "-" else 1


def parse_timestamp(value: Any) -> Optional[float]:
    """Seconds since the epoch from epoch numbers (s/ms/us/ns) or ISO-8601; None when unparseable.

    Naive ISO times are taken as UTC, so results do not depend on the host's time zone.
    """
    if not isinstance(value, (int, float, str)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except ValueError:
        try:
            dt = datetime.fromisoformat(str(value).strip().replace(",", "."))
        except ValueError:
            return None
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()
    if not math.isfinite(number):
        return None
    # Epoch seconds stay below 1e11 until the year 5138; larger values are finer units.
    for scale in (1.0, 1e3, 1e6, 1e9):
        if abs(number) < 1e11 * scale:
            return number / scale
    return None


def text_or_none(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def first_present(obj: dict[str, Any], keys: tuple[str, ...]) -> tuple[Optional[str], Any]:
    for k in keys:
        if obj.get(k) is not None:
            return k, obj[k]
    return None, None


def flatten(prefix: str, value: dict[str, Any], out: dict[str, Any]) -> None:
    # Depth-first like a recursive walk (same order, same "later wins"), but with an explicit
    # stack, so JSON nested as deep as the parser allows cannot overflow the Python stack.
    stack = [(prefix, iter(value.items()))]
    while stack:
        prefix, items = stack[-1]
        for k, v in items:
            if isinstance(v, dict):
                # OTel JSON wraps resource attributes as {"resource": {"attributes": {...}}}.
                stack.append((prefix if k == "attributes" else f"{prefix}{k}.", iter(v.items())))
                break
            out[f"{prefix}{k}"] = v
        else:
            stack.pop()


def label_or_none(value: Any, where: str, report: ReadReport) -> Optional[int]:
    try:
        return parse_label(value)
    except ValueError as exc:
        report.bad_labels += 1
        report.problem(f"{where}: {exc}; kept as unlabeled")
        return None


def line_labels(value: Any, n: int, where: str, report: ReadReport) -> Optional[list[int]]:
    if value is None:
        return None
    try:
        labels = [parse_label(v) for v in value] if isinstance(value, list) else []
        if len(labels) != n or None in labels:
            raise ValueError(f"line_labels must be a list of {n} 0/1 labels")
    except ValueError as exc:
        report.bad_labels += 1
        report.problem(f"{where}: {exc}; line labels dropped")
        return None
    return [int(v) for v in labels if v is not None]


def set_label(record: LogRecord, value: Any, label_parser: Callable[[Any], Optional[int]], lineno: int,
              report: ReadReport) -> None:
    """A line's own label; one that does not parse is counted and the line kept unlabeled."""
    try:
        record.label = label_parser(value)
    except ValueError as exc:
        report.bad_labels += 1
        report.problem(f"line {lineno}: {exc}; kept as unlabeled")


def timestamp_or_none(value: Any, lineno: int, report: ReadReport) -> Optional[float]:
    ts = parse_timestamp(value)
    if ts is None:
        report.bad_timestamps += 1
        report.problem(f"line {lineno}: unparseable timestamp {str(value)[:40]!r}")
    return ts
