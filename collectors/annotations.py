"""The `logllm.*` names of DESIGN §3, shared by every integration that annotates records."""
from __future__ import annotations

from typing import Any, Optional

from logllm_plugin.records import Verdict

SCORE = "logllm.anomaly.score"
LABEL = "logllm.anomaly.label"
CATEGORY = "logllm.anomaly.category"
SEQUENCE_ID = "logllm.sequence.id"
SEQUENCE_KEY = "logllm.sequence.key"
SEQUENCE_POSITION = "logllm.sequence.position"
EVIDENCE = "logllm.evidence"
MODEL_VERSION = "logllm.model.version"
STATUS = "logllm.status"
SUMMARY = "logllm.explanation.summary"
SUGGESTION = "logllm.explanation.suggestion"
FAMILIARITY = "logllm.sequence.familiarity"
SUPPRESSED = "logllm.suppressed"
# Why the sequence closed (full | idle | age | pressure | end): `end`, `age` and `pressure` may have
# cut a session short, which tells an operator why a verdict rests on part of a session.
CLOSED_BY = "logllm.sequence.closed_by"

STATUS_OK, STATUS_UNAVAILABLE, STATUS_TIMEOUT, STATUS_REJECTED = "ok", "unavailable", "timeout", "rejected"
STATUS_LEARNING = "learning"
UNSCORED = "unscored"


def record_annotations(sequence_id: str, key: str, position: int, verdict: Optional[Verdict],
                       status: str = STATUS_OK, closed_by: Optional[str] = None) -> dict[str, Any]:
    """Attributes for the record at `position` of a sequence; `verdict` None means not scored."""
    out: dict[str, Any] = {SEQUENCE_ID: sequence_id, SEQUENCE_KEY: key, SEQUENCE_POSITION: position, STATUS: status}
    if closed_by:
        out[CLOSED_BY] = closed_by
    if verdict is None:
        out[LABEL] = UNSCORED
        return out
    if verdict.status == STATUS_LEARNING:  # no model yet: nothing to say but that it is learning
        out.update({STATUS: STATUS_LEARNING, LABEL: UNSCORED})
        return out
    out.update({
        SCORE: float(verdict.score),
        LABEL: verdict.label,
        CATEGORY: verdict.category,
        EVIDENCE: position in verdict.evidence,
        MODEL_VERSION: verdict.model_version,
        FAMILIARITY: float(verdict.familiarity),
        SUPPRESSED: bool(verdict.suppressed),
    })
    return out
