"""LearningDetector: starts with no model, learns the user's normal, retrains on a schedule.

    detect()  → mask personal data → append to the history → score with the current version
              (or answer `unscored` / status `learning`) → apply operators' corrections
    poll loop → enough history and no model yet, or a retrain is due → one training cycle:
        1. the most recent history (bounded); its newest share is held out for the checks
        2. retrain only: leave out what the serving model flags with high confidence, unless the
           lines it does not know are common in the window (a release brings new normal lines to
           many sequences; an incident's lines are rare), and what operators marked anomalous;
           sequences marked normal are always in
        3. a niced subprocess trains normal-only (trainers.small.train_small)
        4. checks on the held-out history (checks.py), against the serving model too
        5. passed → published into the model store (atomic) and swapped in between two calls
"""
from __future__ import annotations

import itertools
import logging
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from logllm_plugin.config import PluginConfig, config_to_dict
from logllm_plugin.learning import checks
from logllm_plugin.learning.feedback import sequence_signature
from logllm_plugin.learning.history import DEFAULT_SOURCE, SequenceHistory
from logllm_plugin.learning.train_job import start_training, write_training_set
from logllm_plugin.learning.versioned import STATE_SERVING, STATE_TRAINING, VersionedDetector
from logllm_plugin.records import LogSequence, Verdict

logger = logging.getLogger(__name__)

MIN_HOLDOUT = 20
# A release's new lines in one sequence, each read as dropped or as its nearest known line: every
# combination up to this many distinct lines (2^3 readings), beyond it three (see _release_readings).
RELEASE_COMBINATIONS_UP_TO = 3
# A new line this close to a known one (cosine distance of the line embeddings) reads as that line
# reworded: "Receiving block <*> src: /<*> dest: /<*> [build <*>]" lies 0.08 from the line without
# the suffix, two HDFS events ("Receiving block" / "Received block") 0.35 apart, the variant
# tolerances of the shared sets' templates 0.11-0.28.
REWORDED_DISTANCE = 0.2


def _store_threshold(model_dir: Path, threshold: float) -> None:
    """The calibrated threshold goes into the model directory: followers and restarts use it too."""
    from logllm_plugin.artifacts import DETECTOR_FILE, read_json, write_json

    meta = read_json(model_dir / DETECTOR_FILE)
    meta["trained_threshold"] = meta.get("threshold")
    meta["threshold"] = threshold
    write_json(model_dir / DETECTOR_FILE, meta)


@dataclass
class TrainingWindow:
    """What one training cycle learns from and checks on."""

    train: list[list[str]] = field(default_factory=list)
    closed_by: list[Optional[str]] = field(default_factory=list)  # parallel to train
    holdout: list[list[str]] = field(default_factory=list)
    left_out: Counter = field(default_factory=Counter)
    marked: dict = field(default_factory=dict)  # {"normal": [...], "anomalous": [...]} masked sequences


CRASH_RETRY_S = 30.0  # first wait before training again after the trainer crashed


class LearningDetector(VersionedDetector):
    def __init__(self, directory: str | Path, config: PluginConfig, device: str = "auto",
                 initial=None, source: str = DEFAULT_SOURCE):
        super().__init__(directory, config, device=device, create=True)
        self.history = SequenceHistory(self.directory / "history", self.learning.history_max_bytes)
        self.source = source
        stale = self.models.remove_stale_temps()
        if stale:
            logger.warning("removed %d half-written model version(s) left by an earlier learner", stale)
        self.training = False
        self.trainings = 0
        self.last_outcome: dict = {}
        self._count_at_last_training: Optional[int] = None
        self._last_training_end = 0.0
        self._retry_at: Optional[float] = None  # after a trainer that crashed: try again then
        self._crashes = 0
        self._job = None
        self._initial = initial  # a model from a file serves until the first learned version passes
        if not self.refresh() or self._current is None:
            if initial is not None:
                self.swap_in(initial, "initial")

    @classmethod
    def open(cls, directory: str | Path, config: Optional[PluginConfig] = None, threads: Optional[int] = None,
             device: str = "auto") -> "LearningDetector":
        """A running learner for in-process scorers (the OTLP bridge, the SDK processor, es annotate)."""
        from logllm_plugin.config import load_config

        learner = cls(directory, config or load_config(), device=device)
        learner.threads = threads
        learner.start_polling()
        return learner

    @property
    def state(self) -> str:
        if self._current is not None:
            return STATE_SERVING
        return STATE_TRAINING if self.training else "learning"

    # -- scoring -----------------------------------------------------------------------------------
    def detect(self, sequences: Sequence[Union[LogSequence, Sequence[str]]],
               edges: Optional[Sequence[Optional[str]]] = None) -> list[Verdict]:
        ids, masked = self.mask(sequences)
        if edges is None and any(getattr(s, "closed_by", None) for s in sequences):
            edges = [getattr(s, "closed_by", None) for s in sequences]  # the sequencer's reason, kept with it
        self.history.append(masked, edges, self.source)
        return self.score_masked(ids, masked)

    def learn_from(self, sequences: Sequence[Sequence[str]], source: Optional[str] = None) -> int:
        """History without scoring (a bootstrap from data that is already stored)."""
        masked = [[self.mask_line(line) for line in seq] for seq in sequences if seq]
        return self.history.append(masked, None, source or self.source)

    # -- the loop ----------------------------------------------------------------------------------
    def due(self) -> bool:
        lc = self.learning
        received = self.history.received
        if self.training:
            return False
        if self._retry_at is not None and time.monotonic() >= self._retry_at:
            return True  # the trainer crashed: no new traffic is needed to try again
        if self._count_at_last_training is None:
            if self._version not in (None, "initial"):  # a learned version already serves (restart)
                return self._retrain_due(received)
            return max(self.history.count, received) >= lc.min_sequences
        if self._current is None or self._version == "initial":  # the last attempt failed its checks
            return received - self._count_at_last_training >= lc.min_new_sequences
        return self._retrain_due(received)

    def _retrain_due(self, received: int) -> bool:
        lc = self.learning
        if lc.retrain_every_s <= 0 or time.monotonic() - self._last_training_end < lc.retrain_every_s:
            return False
        since = received - (self._count_at_last_training or 0)
        return since >= lc.min_new_sequences

    def tick(self) -> None:
        if self.due():
            self.start_training()

    def start_training(self) -> threading.Thread:
        self.training = True
        self._count_at_last_training = self.history.received
        worker = threading.Thread(target=self._train_cycle, name="logllm-learn", daemon=True)
        worker.start()
        return worker

    def _train_cycle(self) -> None:
        started = time.monotonic()
        outcome: dict = {"started": time.time()}
        try:
            outcome.update(self._train_and_check())
        except Exception as exc:  # the scoring path never sees a training failure
            logger.exception("learning: training cycle failed")
            outcome.update(published=False, error=f"{type(exc).__name__}: {exc}")
        finally:
            outcome["seconds"] = round(time.monotonic() - started, 1)
            self.last_outcome = outcome
            self.trainings += 1
            self._last_training_end = time.monotonic()
            self._schedule_retry(outcome)
            self.training = False
        logger.info("learning: training cycle done", extra={"outcome": outcome})

    def _schedule_retry(self, outcome: dict) -> None:
        """A trainer that crashed (not a candidate the checks refused) is tried again after
        CRASH_RETRY_S, doubling with every crash in a row up to an hour: with no new traffic the
        learner would otherwise stay `learning` for good."""
        crashed = "error" in outcome and not str(outcome["error"]).startswith("only ")
        if not crashed:
            self._retry_at, self._crashes = None, 0
            return
        self._crashes += 1
        delay = min(CRASH_RETRY_S * 2 ** (self._crashes - 1), 3600.0)
        self._retry_at = time.monotonic() + delay
        outcome["retry_in_s"] = delay

    def training_window(self) -> "TrainingWindow":
        """The recent history split into training and held-out sequences, minus what was left out."""
        lc = self.learning
        entries = self.history.recent(lc.train_max_sequences)
        recent = [e.lines for e in entries]
        # Every k-th sequence is held out, not the newest block: the model then trains on the whole
        # window, newest shapes included (logs drift), and the checks still see every period of it.
        step = max(2, min(int(round(1.0 / max(lc.holdout_fraction, 1e-9))), len(recent) // MIN_HOLDOUT or 2))
        held = set(range(step - 1, len(recent), step))
        train = [n for n in range(len(recent)) if n not in held]
        holdout = [recent[n] for n in sorted(held)]
        corrections = dict(self.feedback.labeled())
        window = TrainingWindow(holdout=holdout)
        flagged = self._confidently_flagged([recent[n] for n in train]) \
            if self._current is not None and self._version != "initial" else set()
        for k, n in enumerate(train):
            label = corrections.get(sequence_signature(recent[n]))
            if label == "anomalous":
                window.left_out["marked_anomalous"] += 1
            elif label is None and k in flagged:
                window.left_out["flagged_by_serving_model"] += 1
            else:
                window.train.append(recent[n])
                window.closed_by.append(entries[n].edge)  # the sequencer's reason, when it was in-process
        # An operator's word is training data with its label (the history copy of a sequence marked
        # anomalous was left out above, so it is not also taught as normal).
        window.marked = {want: [list(sig) for sig, label in corrections.items() if label == want]
                         for want in ("normal", "anomalous")}
        window.left_out["marked_normal"] = len(window.marked["normal"])
        window.left_out["marked_anomalous_trained"] = len(window.marked["anomalous"])
        return window

    def _confidently_flagged(self, train: list[list[str]]) -> set[int]:
        """Indexes the serving model flags at `high_confidence`, except those whose unknown lines are
        common (a release's) and that read as normal once those lines are read as the release meant
        them (see `_release_readings`)."""
        current = self._current
        verdicts = current.detect([list(s) for s in train])
        store = current.store
        share_of = Counter()
        masked_of = [[store.lookup(line) for line in seq] for seq in train]
        for matches in masked_of:
            share_of.update({m.text for m in matches if m.novel})
        common = {text for text, n in share_of.items() if n >= self.learning.new_normal_share * max(len(train), 1)}
        # what the serving model knows: the known lines of this window and, for label-free models,
        # every line of its normal history (the novelty table): a release that rewrote the most
        # common lines leaves the window holding their new wording only
        known = {m.text for matches in masked_of for m in matches if not m.novel}
        if getattr(current, "novelty", None) is not None:
            known |= set(current.novelty.table.support)
        nearest = nearest_known_lines(current.encoder, common, known)
        out, recheck = set(), {}
        for n, (verdict, matches) in enumerate(zip(verdicts, masked_of)):
            if verdict.label != "anomalous" or verdict.score < self.learning.high_confidence:
                continue
            unknown = {m.text for m in matches if m.novel}
            if unknown and unknown <= common:
                readings = _release_readings(train[n], matches, common, nearest)
                if readings:
                    recheck[n] = readings
                continue
            out.add(n)
        if recheck:
            asked = [(n, reading) for n, readings in recheck.items() for reading in readings]
            again = current.detect([reading for _, reading in asked])
            normal_somehow = {n for (n, _), verdict in zip(asked, again)
                              if verdict.label != "anomalous" or verdict.score < self.learning.high_confidence}
            out.update(n for n in recheck if n not in normal_somehow)
        return out

    def _train_and_check(self) -> dict:
        lc = self.learning
        window = self.training_window()
        train, holdout, left_out, marked = window.train, window.holdout, dict(window.left_out), window.marked
        if len(train) < MIN_HOLDOUT:
            return {"published": False, "error": f"only {len(train)} sequences to train on"}
        work = self.models.temp_dir()
        out_dir = work / "model"
        train_path = work / "train.jsonl"
        write_training_set(train_path, train, marked["normal"], marked["anomalous"], closed_by=window.closed_by)
        config = config_to_dict(self.config.label_free())
        logger.info("learning: training on %d sequences (%d held out for checks)", len(train), len(holdout),
                    extra={"left_out": left_out})
        job = start_training(train_path, config, out_dir, self.threads, lc.nice, work / "train.log")
        self._job = job
        code = job.wait()
        self._job = None
        if code != 0:
            tail = (work / "train.log").read_text(encoding="utf-8", errors="replace")[-2000:]
            shutil.rmtree(work, ignore_errors=True)
            return {"published": False, "error": f"trainer exited with {code}: {tail.strip().splitlines()[-1:]}"}
        from logllm_plugin.detector import Detector

        candidate = Detector.load(out_dir, device=self.device_name)
        self._prepare(candidate)
        calibrated, checked = None, holdout
        if lc.target_false_positive_rate is not None:
            # every other sequence calibrates, the rest checks: both halves from the same hours
            calibration, checked = holdout[0::2], holdout[1::2]
            calibrated = checks.calibrate_threshold(candidate, calibration, lc.target_false_positive_rate)
            _store_threshold(out_dir, candidate.settings.threshold)
        result = checks.measure(candidate, checked, seed=self.trainings)
        current_result = None
        if self._current is not None:
            current_result = checks.measure(self._current, checked, seed=self.trainings)
        checks.judge(result, current_result, lc.flag_rate_ceiling, lc.min_injected_recall)
        summary = {"trained_on": len(train), "held_out": len(holdout), "left_out": left_out,
                   "calibration": calibrated, "checks": result.to_dict(),
                   "serving_checks": current_result.to_dict() if current_result else None}
        if not result.passed:
            shutil.rmtree(work, ignore_errors=True)
            logger.warning("learning: candidate refused: %s", "; ".join(result.reasons))
            return {"published": False, **summary}
        metadata = {"created": time.time(), **summary}
        version = self.models.publish(out_dir, metadata)
        shutil.rmtree(work, ignore_errors=True)
        candidate.settings.model_version = f"{self.directory.name}/{version}"
        candidate.model_dir = self.models.root / version
        self.swap_in(candidate, version)
        return {"published": True, "version": version, **summary}

    def close(self) -> None:
        super().close()
        job = self._job
        if job is not None and job.poll() is None:
            job.kill()
        self.history.close()

    def info(self) -> dict:
        return {**super().info(), "history_sequences": self.history.count, "received": self.history.received,
                "history_write_errors": self.history.write_errors, "trainings": self.trainings,
                "training": self.training, "last_training": self.last_outcome}


def _release_readings(lines: list[str], matches, common: set[str], nearest: dict[str, tuple[str, float]]) -> list[list[str]]:
    """A sequence whose only unknown lines are common ones (a release's), read the ways the release
    may have meant them: each such line dropped (a release that *adds* a line) or read as the known
    line nearest to it (a release that *rewords* one: dropped, a block would miss a step it always
    holds). Every combination for up to RELEASE_COMBINATIONS_UP_TO distinct lines (a release may do
    both at once); beyond, all dropped, all read as their nearest, and each read as its nearest
    where that lies within REWORDED_DISTANCE. The sequence is an incident only if every reading
    still is."""
    present = sorted({m.text for m in matches if m.text in common})
    if len(present) <= RELEASE_COMBINATIONS_UP_TO:
        choices = list(itertools.product((False, True), repeat=len(present)))
    else:
        close = tuple(text in nearest and nearest[text][1] <= REWORDED_DISTANCE for text in present)
        choices = [(False,) * len(present), (True,) * len(present), close]
    readings = []
    for choice in choices:
        mapped = {text for text, use in zip(present, choice) if use and text in nearest}
        reading = [nearest[m.text][0] if m.text in mapped else line
                   for line, m in zip(lines, matches) if m.text not in common or m.text in mapped]
        if reading and reading not in readings:
            readings.append(reading)
    return readings


def nearest_known_lines(encoder, texts: set[str], known: set[str]) -> dict[str, tuple[str, float]]:
    """Each masked text → the known masked line closest to it and its cosine distance (the line
    embeddings are unit vectors); masked text masks to itself, so it can stand in for a raw line."""
    if not texts or not known:
        return {}
    queries, references = sorted(texts), sorted(known)
    sims = encoder.encode(queries) @ encoder.encode(references).T
    best = sims.argmax(axis=1)
    return {text: (references[int(k)], float(1.0 - sims[i, k])) for i, (text, k) in enumerate(zip(queries, best))}
