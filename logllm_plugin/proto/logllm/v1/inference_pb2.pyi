from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Sequence(_message.Message):
    __slots__ = ("id", "key", "lines", "closed_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    id: str
    key: str
    lines: _containers.RepeatedScalarFieldContainer[str]
    closed_by: str
    def __init__(self, id: _Optional[str] = ..., key: _Optional[str] = ..., lines: _Optional[_Iterable[str]] = ..., closed_by: _Optional[str] = ...) -> None: ...

class DetectRequest(_message.Message):
    __slots__ = ("sequences",)
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedCompositeFieldContainer[Sequence]
    def __init__(self, sequences: _Optional[_Iterable[_Union[Sequence, _Mapping]]] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("id", "key", "label", "score", "category", "evidence", "novel_templates", "model_version", "familiarity", "status", "suppressed")
    ID_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    NOVEL_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FAMILIARITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SUPPRESSED_FIELD_NUMBER: _ClassVar[int]
    id: str
    key: str
    label: str
    score: float
    category: str
    evidence: _containers.RepeatedScalarFieldContainer[int]
    novel_templates: int
    model_version: str
    familiarity: float
    status: str
    suppressed: bool
    def __init__(self, id: _Optional[str] = ..., key: _Optional[str] = ..., label: _Optional[str] = ..., score: _Optional[float] = ..., category: _Optional[str] = ..., evidence: _Optional[_Iterable[int]] = ..., novel_templates: _Optional[int] = ..., model_version: _Optional[str] = ..., familiarity: _Optional[float] = ..., status: _Optional[str] = ..., suppressed: _Optional[bool] = ...) -> None: ...

class DetectResponse(_message.Message):
    __slots__ = ("verdicts", "model_version")
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    verdicts: _containers.RepeatedCompositeFieldContainer[Verdict]
    model_version: str
    def __init__(self, verdicts: _Optional[_Iterable[_Union[Verdict, _Mapping]]] = ..., model_version: _Optional[str] = ...) -> None: ...

class AnalyzeRequest(_message.Message):
    __slots__ = ("sequence", "verdict")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    sequence: Sequence
    verdict: Verdict
    def __init__(self, sequence: _Optional[_Union[Sequence, _Mapping]] = ..., verdict: _Optional[_Union[Verdict, _Mapping]] = ...) -> None: ...

class EvidenceLine(_message.Message):
    __slots__ = ("index", "line")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    LINE_FIELD_NUMBER: _ClassVar[int]
    index: int
    line: str
    def __init__(self, index: _Optional[int] = ..., line: _Optional[str] = ...) -> None: ...

class Explanation(_message.Message):
    __slots__ = ("summary", "suggestion", "analyzer", "cached", "category", "evidence", "status")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SUGGESTION_FIELD_NUMBER: _ClassVar[int]
    ANALYZER_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    summary: str
    suggestion: str
    analyzer: str
    cached: bool
    category: str
    evidence: _containers.RepeatedCompositeFieldContainer[EvidenceLine]
    status: str
    def __init__(self, summary: _Optional[str] = ..., suggestion: _Optional[str] = ..., analyzer: _Optional[str] = ..., cached: _Optional[bool] = ..., category: _Optional[str] = ..., evidence: _Optional[_Iterable[_Union[EvidenceLine, _Mapping]]] = ..., status: _Optional[str] = ...) -> None: ...

class AnalyzeResponse(_message.Message):
    __slots__ = ("explanation",)
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    explanation: Explanation
    def __init__(self, explanation: _Optional[_Union[Explanation, _Mapping]] = ...) -> None: ...

class ModelInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfoResponse(_message.Message):
    __slots__ = ("model_version", "plugin_version", "threshold", "device", "dtype", "categories", "templates", "max_batch_sequences", "max_wait_ms", "max_lines_per_sequence", "max_sequences_per_request", "max_line_bytes", "state", "history_sequences")
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_LINES_PER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQUENCES_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_LINE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    model_version: str
    plugin_version: str
    threshold: float
    device: str
    dtype: str
    categories: _containers.RepeatedScalarFieldContainer[str]
    templates: int
    max_batch_sequences: int
    max_wait_ms: int
    max_lines_per_sequence: int
    max_sequences_per_request: int
    max_line_bytes: int
    state: str
    history_sequences: int
    def __init__(self, model_version: _Optional[str] = ..., plugin_version: _Optional[str] = ..., threshold: _Optional[float] = ..., device: _Optional[str] = ..., dtype: _Optional[str] = ..., categories: _Optional[_Iterable[str]] = ..., templates: _Optional[int] = ..., max_batch_sequences: _Optional[int] = ..., max_wait_ms: _Optional[int] = ..., max_lines_per_sequence: _Optional[int] = ..., max_sequences_per_request: _Optional[int] = ..., max_line_bytes: _Optional[int] = ..., state: _Optional[str] = ..., history_sequences: _Optional[int] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("sequences", "label")
    SEQUENCES_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    sequences: _containers.RepeatedCompositeFieldContainer[Sequence]
    label: str
    def __init__(self, sequences: _Optional[_Iterable[_Union[Sequence, _Mapping]]] = ..., label: _Optional[str] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("accepted", "stored")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    accepted: int
    stored: int
    def __init__(self, accepted: _Optional[int] = ..., stored: _Optional[int] = ...) -> None: ...
