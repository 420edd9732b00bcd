"""What the learner and its followers share: a current model version swapped in between calls,
learning-state verdicts while there is none, and operators' corrections applied to every verdict.

Integrations hold one of these where they would hold a `Detector`: it has the same `detect`, and
the attributes the server sets on a detector (threads, dtype, verdict cache) are kept here and
applied to each version as it comes in.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Optional, Sequence, Union

from logllm_plugin.artifacts import ModelDirError
from logllm_plugin.config import PluginConfig
from logllm_plugin.learning.feedback import FeedbackStore, sequence_signature
from logllm_plugin.learning.model_store import ModelStore
from logllm_plugin.personal_data import PersonalDataMasker
from logllm_plugin.records import LogSequence, Verdict

logger = logging.getLogger(__name__)

STATE_LEARNING, STATE_TRAINING, STATE_SERVING = "learning", "training", "serving"
LEARNING_STATUS = "learning"
MASK_CACHE_LINES = 200_000


class _NoModelSettings:
    threshold = 0.0
    model_version = ""


def personal_data_masker(config: PluginConfig) -> PersonalDataMasker:
    extra = [spec.split("=", 1) for spec in config.analysis.mask_patterns]
    return PersonalDataMasker(extra)


class VersionedDetector:
    def __init__(self, directory: str | Path, config: PluginConfig, device: str = "auto", create: bool = True):
        self.directory = Path(directory)
        self.config = config
        self.learning = config.learning
        self.device_name = device
        self.models = ModelStore(self.directory, keep=self.learning.keep_versions, create=create)
        self.feedback = FeedbackStore(self.directory, self.learning.feedback_max_entries, self.learning.feedback_ttl_s,
                                      max_lines=config.server.max_lines_per_sequence)
        self._personal_data = personal_data_masker(config)
        self._masked: dict[str, str] = {}
        self._current = None  # a Detector; replaced whole, read once per call: swaps fall between calls
        self._version: Optional[str] = None
        self._swap_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: Optional[threading.Thread] = None
        self.load_failures = 0
        self.last_load_error: Optional[str] = None
        # Set by the server (InferenceCore.attach) like on a Detector; applied to every version.
        self.threads: Optional[int] = None
        self._dtype = "float32"
        self._verdict_cache_size = config.server.verdict_cache_size
        self._own_encoder = None  # the line encoder while no version serves (made on first use)

    # -- what a server reads from a detector ---------------------------------------------------------
    @property
    def device(self):
        import torch

        current = self._current
        if current is not None:
            return current.device
        return torch.device("cuda" if self.device_name == "cuda" else "cpu")

    @property
    def settings(self):
        current = self._current
        return current.settings if current is not None else _NoModelSettings()

    @property
    def categories(self) -> list[str]:
        current = self._current
        return list(current.categories) if current is not None else []

    @property
    def store(self):
        current = self._current
        if current is not None:
            return current.store
        from logllm_plugin.templates import TemplateStore

        return TemplateStore(self.config.templates)

    @property
    def encoder(self):
        """The line encoder (the knowledge base classifies evidence lines by meaning with it)."""
        current = self._current
        if current is not None:
            return current.encoder
        if self._own_encoder is None:
            from logllm_plugin.encoder import LineEncoder

            self._own_encoder = LineEncoder(self.config.encoder)  # loads its model on first use only
        return self._own_encoder

    def store_ids(self, lines: Sequence[str]):
        current = self._current
        if current is not None:
            return current.store_ids(lines)
        import numpy as np

        return np.zeros(len(lines), dtype=np.int64)

    def set_dtype(self, name: str) -> None:
        self._dtype = name
        current = self._current
        if current is not None:
            current.set_dtype(name)

    @property
    def verdict_cache(self):
        current = self._current
        return current.verdict_cache if current is not None else None

    @verdict_cache.setter
    def verdict_cache(self, cache) -> None:
        self._verdict_cache_size = cache.max_entries
        current = self._current
        if current is not None:
            current.verdict_cache = cache

    @property
    def version(self) -> Optional[str]:
        return self._version

    @property
    def state(self) -> str:
        return STATE_SERVING if self._current is not None else STATE_LEARNING

    def warm_up(self, lines: Sequence[str]) -> None:
        current = self._current
        if current is not None:
            current.detect([list(lines)])

    # -- versions ----------------------------------------------------------------------------------
    def _prepare(self, detector) -> None:
        from logllm_plugin.verdict_cache import VerdictCache

        detector.threads = self.threads
        detector.input_masker = None  # mask_line masks (and caches) before every call
        detector.set_dtype(self._dtype)
        detector.verdict_cache = VerdictCache(self._verdict_cache_size)

    def _load_version(self, version: str):
        from logllm_plugin.detector import Detector

        detector = Detector.load(self.models.path_of(version), device=self.device_name)
        detector.settings.model_version = f"{self.directory.name}/{version}"
        return detector

    def swap_in(self, detector, version: str) -> None:
        """Serve `detector` from the next call on (callers in flight finish with the old one)."""
        self._prepare(detector)
        with self._swap_lock:
            self._current, self._version = detector, version
        logger.info("serving model version %s", version)

    def refresh(self) -> bool:
        """Load the store's current version when it changed; False (old one kept) when it cannot be."""
        try:
            wanted = self.models.current_version()
        except ModelDirError as exc:
            return self._load_failed(str(exc))
        if wanted is None or wanted == self._version:
            return True
        try:
            detector = self._load_version(wanted)
        except Exception as exc:  # corrupt or half-copied: refuse it, keep serving what we have
            return self._load_failed(f"model version {wanted} refused: {exc}")
        self.swap_in(detector, wanted)
        self.last_load_error = None
        return True

    def _load_failed(self, message: str) -> bool:
        self.load_failures += 1
        if message != self.last_load_error:
            logger.error("%s; still serving %s", message, self._version or "nothing (learning)")
        self.last_load_error = message
        return False

    def start_polling(self) -> None:
        self._poller = threading.Thread(target=self._poll, name="logllm-model-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.learning.poll_s):
            self.refresh()
            self.feedback.reload_if_changed()
            self.tick()

    def tick(self) -> None:
        """Hook for the learner: called after every poll."""

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)

    # -- scoring -----------------------------------------------------------------------------------
    def mask_line(self, line: str) -> str:
        """The personal-data masked form of a line: what the history keeps and the model scores."""
        hit = self._masked.get(line)
        if hit is None:
            hit = self._personal_data.mask(line)
            if len(self._masked) >= MASK_CACHE_LINES:
                self._masked.clear()
            self._masked[line] = hit
        return hit

    def mask(self, sequences: Sequence[Union[LogSequence, Sequence[str]]]) -> tuple[list[str], list[list[str]]]:
        ids = [s.id if isinstance(s, LogSequence) else str(n) for n, s in enumerate(sequences)]
        lines = [s.lines if isinstance(s, LogSequence) else list(s) for s in sequences]
        if any(len(x) == 0 for x in lines):
            raise ValueError("every sequence needs at least one line")
        return ids, [[self.mask_line(line) for line in seq] for seq in lines]

    def detect(self, sequences: Sequence[Union[LogSequence, Sequence[str]]]) -> list[Verdict]:
        ids, masked = self.mask(sequences)
        return self.score_masked(ids, masked)

    def score_masked(self, ids: list[str], masked: list[list[str]]) -> list[Verdict]:
        current = self._current
        if current is None:
            verdicts = [Verdict(id=i, label="unscored", score=0.0, category="unscored", evidence=[], novel_templates=0,
                                model_version="", familiarity=0.0, status=LEARNING_STATUS) for i in ids]
        else:
            verdicts = current.detect([LogSequence(id=i, lines=m) for i, m in zip(ids, masked)])
        if len(self.feedback):
            for verdict, lines in zip(verdicts, masked):
                corrected = self.feedback.lookup(sequence_signature(lines))
                if corrected is not None:
                    verdict.label, verdict.suppressed = corrected, True
                    if corrected == "normal":
                        verdict.category, verdict.evidence = "normal", []
                    elif verdict.category in ("normal", "unscored"):
                        verdict.category = "anomaly"
        return verdicts

    def add_feedback(self, sequences: Sequence[Sequence[str]], label: str) -> int:
        masked = [[self.mask_line(str(line)) for line in seq] for seq in sequences]
        return self.feedback.add(masked, label)

    def info(self) -> dict:
        return {"state": self.state, "version": self._version or "", "load_failures": self.load_failures,
                "last_load_error": self.last_load_error or "", "feedback_entries": len(self.feedback)}


def record_feedback(directory: str | Path, config: PluginConfig, sequences: Sequence[Sequence[str]], label: str) -> int:
    """Store corrections in a learner's DIR from another process (`es feedback --learn DIR`): masked
    as the learner masks them; the learner takes them at its next poll."""
    if not (Path(directory) / "models").is_dir():
        raise FileNotFoundError(f"{directory} is not a learner's directory (no models/ in it): "
                                "give the DIR of `serve --learn` or `es annotate --learn`")
    personal_data = personal_data_masker(config)
    store = FeedbackStore(directory, config.learning.feedback_max_entries, config.learning.feedback_ttl_s,
                          max_lines=config.server.max_lines_per_sequence)
    return store.add([[personal_data.mask(str(line)) for line in seq] for seq in sequences], label)
