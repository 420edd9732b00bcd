"""`data check`: what a user should know about a data set before training on it.

Counts, anomaly rate, length distribution, duplicates, templates (our Drain3 store), lines that
failed to decode, train/test leakage across parts, and label conflicts: the same template
sequence labeled both normal and anomalous, with the F1 ceiling that puts on any detector that
sees only templates (ceiling.py). Findings are `errors` (training on this is meaningless: no
labels, one class, unreadable lines) or `warnings` (worth knowing, training still works).

Parts: several files are parts named by their stem (train.jsonl, test.jsonl); one file whose
sequences carry a `split` field is split by it. The ceiling is computed on the `test` part when
there is one, else on everything.

Template sequences come in two grains: Drain template ids (what a bag-of-templates model
sees) and masked lines (what our encoder embeds; finer, since Drain may merge lines). Conflicts
are reported for both; the masked-line ceiling bounds our detector, the Drain one a
template-id detector.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from logllm_plugin.data.ceiling import conflict_stats
from logllm_plugin.readers import SEQUENCE_FORMATS, InputError, ReadReport, detect_format, read_sequence_file
from logllm_plugin.records import LogSequence
from logllm_plugin.templates import TemplateStore

logger = logging.getLogger(__name__)

TRAIN_NAMES = ("train", "training", "train_normal")
TEST_NAMES = ("test", "testing")


@dataclass
class Part:
    name: str
    sequences: list[LogSequence]
    report: Optional[ReadReport] = None  # per file; None for parts split out of one file


@dataclass
class CheckResult:
    summary: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary, "errors": self.errors, "warnings": self.warnings}


def load_parts(paths: Sequence[str]) -> tuple[list[Part], list[tuple[str, ReadReport]]]:
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(path.glob("*.jsonl")) + sorted(path.glob("*.json"))
            if not found:
                raise InputError(f"{p}: directory holds no .jsonl/.json sequence files")
            files.extend(found)
        else:
            files.append(path)
    parts, reports = [], []
    for path in files:
        fmt = detect_format(path)
        if fmt not in SEQUENCE_FORMATS:
            raise InputError(f"{path} holds {fmt} input, not sequences: convert it first "
                             f"(logllm-plugin data convert --from ... --to sequences)")
        report = ReadReport()
        parts.append(Part(path.stem, list(read_sequence_file(path, fmt, report)), report))
        reports.append((str(path), report))
    if len(parts) == 1 and any(s.split for s in parts[0].sequences):
        only = parts[0]
        names = sorted({s.split or "(none)" for s in only.sequences}, key=_part_order)
        parts = [Part(n, [s for s in only.sequences if (s.split or "(none)") == n]) for n in names]
    return sorted(parts, key=lambda p: _part_order(p.name)), reports


def _part_order(name: str) -> tuple[int, str]:
    rank = 0 if name in TRAIN_NAMES or name.startswith("train") else 2 if name.startswith("test") else 1
    return rank, name


def _lengths(seqs: Sequence[LogSequence]) -> dict[str, float]:
    n = np.array([len(s.lines) for s in seqs])
    return {"min": int(n.min()), "p50": float(np.percentile(n, 50)), "p90": float(np.percentile(n, 90)),
            "max": int(n.max()), "mean": round(float(n.mean()), 2)}


def _part_summary(part: Part, template_keys: list[tuple], store_ids: list[tuple]) -> dict[str, Any]:
    seqs = part.sequences
    labeled = [s for s in seqs if s.label is not None]
    anomalies = sum(1 for s in labeled if s.label == 1)
    raw = Counter(tuple(s.lines) for s in seqs)
    ids = Counter(s.id for s in seqs)
    return {
        "sequences": len(seqs), "labeled": len(labeled), "unlabeled": len(seqs) - len(labeled),
        "anomalies": anomalies, "anomaly_rate": round(anomalies / len(labeled), 4) if labeled else None,
        "lines": sum(len(s.lines) for s in seqs), "length": _lengths(seqs),
        "duplicate_sequences": sum(c - 1 for c in raw.values()),  # copies beyond the first
        "duplicate_ids": sum(c - 1 for c in ids.values()),
        "distinct_template_sequences": len(set(template_keys)),
        "templates": len({t for ids_ in store_ids for t in ids_}),
        "categories": dict(Counter(s.category for s in seqs if s.label == 1 and s.category)),
    }


def check(paths: Sequence[str], *, allow_unlabeled: bool = False) -> CheckResult:
    parts, reports = load_parts(paths)
    all_seqs = [s for p in parts for s in p.sequences]
    store = TemplateStore()
    train_parts = [p for p in parts if _part_order(p.name)[0] == 0] or parts
    # Learn from training parts first so their ids are stable, then the rest (Drain generalises as it goes).
    for p in train_parts + [p for p in parts if p not in train_parts]:
        store.learn(line for s in p.sequences for line in s.lines)
    drain_keys = {id(s): tuple(store.lookup(line).template_id for line in s.lines) for s in all_seqs}
    masked_keys = {id(s): tuple(store.lookup(line).text for line in s.lines) for s in all_seqs}

    result = CheckResult(summary={"files": [str(p) for p in paths], "parts": {}})
    for p in parts:
        result.summary["parts"][p.name] = _part_summary(
            p, [masked_keys[id(s)] for s in p.sequences], [drain_keys[id(s)] for s in p.sequences])
    # Ids the lookup actually assigns (Drain keeps early, more specific clusters that later lines
    # no longer match): the templates a model trained on these parts would see.
    result.summary["templates"] = len({t for key in drain_keys.values() for t in key})
    result.summary["read"] = {path: _read_summary(r) for path, r in reports}
    _read_findings(result, reports)
    _label_findings(result, parts, all_seqs, allow_unlabeled)
    _conflicts(result, parts, drain_keys, masked_keys)
    _leakage(result, parts, drain_keys, masked_keys, store)
    for name, s in result.summary["parts"].items():
        if s["duplicate_sequences"]:
            result.warnings.append(f"{name}: {s['duplicate_sequences']} sequences repeat an earlier one line for line")
        if s["duplicate_ids"]:
            result.warnings.append(f"{name}: {s['duplicate_ids']} sequence ids occur more than once")
    return result


def _read_summary(r: ReadReport) -> dict[str, Any]:
    return {"format": r.fmt, "lines_read": r.lines_read, "sequences": r.sequences,
            "invalid_utf8_lines": r.invalid_utf8_lines, "skipped_malformed": r.skipped_malformed,
            "skipped_empty": r.skipped_empty, "bad_labels": r.bad_labels, "problems": r.problems[:5]}


def _first(report: ReadReport, *needles: str) -> str:
    found = next((p for p in report.problems if any(n in p for n in needles)), None)
    return f" (first: {found})" if found else ""


def _read_findings(result: CheckResult, reports: Sequence[tuple[str, ReadReport]]) -> None:
    for path, r in reports:
        if r.skipped_malformed:
            result.errors.append(f"{path}: {r.skipped_malformed} lines/items are not sequences and were skipped "
                                 f"(malformed JSON or mixed formats){_first(r, 'malformed', 'skipped')}")
        if r.invalid_utf8_lines:
            result.warnings.append(f"{path}: {r.invalid_utf8_lines} lines are not valid UTF-8 (bad bytes read as "
                                   f"U+FFFD){_first(r, 'invalid UTF-8')}")
        if r.bad_labels:
            result.warnings.append(f"{path}: {r.bad_labels} labels are not 0/1/normal/anomalous and count as missing")


def _label_findings(result: CheckResult, parts: Sequence[Part], all_seqs: Sequence[LogSequence],
                    allow_unlabeled: bool) -> None:
    unlabeled = sum(1 for s in all_seqs if s.label is None)
    if unlabeled == len(all_seqs):
        message = (f"no sequence has a label ({len(all_seqs)} unlabeled): supervised training and every quality "
                   "figure need labels (train small --normal-only treats the data as normal history)")
        (result.warnings if allow_unlabeled else result.errors).append(message)
        return
    if unlabeled:
        first = next(s.id for s in all_seqs if s.label is None)
        result.errors.append(f"{unlabeled} of {len(all_seqs)} sequences have no label (first: {first}); "
                             "train small refuses partly labeled data")
    train = next((p for p in parts if _part_order(p.name)[0] == 0), None) or parts[0]
    labels = {s.label for s in train.sequences if s.label is not None}
    if len(labels) == 1:
        only = "anomalous" if labels == {1} else "normal"
        result.errors.append(f"{train.name}: every labeled sequence is {only}: a detector needs both classes")


def _eval_part(parts: Sequence[Part]) -> Optional[Part]:
    return next((p for p in parts if p.name in TEST_NAMES or p.name.startswith("test")), None)


def _conflicts(result: CheckResult, parts: Sequence[Part], drain_keys: dict, masked_keys: dict) -> None:
    target = _eval_part(parts)
    seqs = [s for s in (target.sequences if target else [x for p in parts for x in p.sequences]) if s.label is not None]
    if not seqs:
        return
    labels = [int(s.label) for s in seqs]
    by_masked = conflict_stats([masked_keys[id(s)] for s in seqs], labels)
    by_drain = conflict_stats([drain_keys[id(s)] for s in seqs], labels)
    name = target.name if target else "all"
    result.summary["conflicts"] = {"part": name, "masked_lines": by_masked.to_dict(), "template_ids": by_drain.to_dict()}
    if target is not None:  # the whole data set as well: conflicts there are label noise in training too
        everything = [s for p in parts for s in p.sequences if s.label is not None]
        result.summary["conflicts"]["all_parts"] = {
            "masked_lines": conflict_stats([masked_keys[id(s)] for s in everything],
                                           [int(s.label) for s in everything]).to_dict(),
            "template_ids": conflict_stats([drain_keys[id(s)] for s in everything],
                                           [int(s.label) for s in everything]).to_dict()}
    same = by_drain.to_dict() == by_masked.to_dict()
    grains = [("template ids (and masked lines)", by_drain)] if same else [("template ids", by_drain),
                                                                           ("masked lines", by_masked)]
    for grain, stats in grains:
        if stats.conflicting_groups:
            result.warnings.append(
                f"{name}: {stats.anomalies_in_conflict} of {stats.anomalies} anomalies share their sequence of "
                f"{grain} with normal sequences ({stats.conflicting_groups} conflicting template sequences, "
                f"{stats.normals_in_conflict} normal sequences): F1 ceiling {stats.f1_ceiling:.4f} for a detector "
                f"that sees only {grain}")


def _leakage(result: CheckResult, parts: Sequence[Part], drain_keys: dict, masked_keys: dict,
             store: TemplateStore) -> None:
    if len(parts) < 2:
        return
    train = next((p for p in parts if _part_order(p.name)[0] == 0), parts[0])
    raw_train = {tuple(s.lines) for s in train.sequences}
    masked_train: dict[tuple, set] = {}
    for s in train.sequences:
        masked_train.setdefault(masked_keys[id(s)], set()).add(s.label)
    train_templates = {t for s in train.sequences for t in drain_keys[id(s)]}
    leakage = {}
    for p in parts:
        if p is train:
            continue
        exact = sum(1 for s in p.sequences if tuple(s.lines) in raw_train)
        same_templates = sum(1 for s in p.sequences if masked_keys[id(s)] in masked_train)
        opposite = sum(1 for s in p.sequences if s.label is not None
                       and (1 - s.label) in masked_train.get(masked_keys[id(s)], ()))
        novel = {t for s in p.sequences for t in drain_keys[id(s)]} - train_templates
        leakage[p.name] = {"exact_copies_of_train": exact, "template_copies_of_train": same_templates,
                           "train_copy_has_other_label": opposite, "templates_not_in_train": len(novel)}
        if exact:
            result.warnings.append(f"{p.name}: {exact} of {len(p.sequences)} sequences also occur line for line in "
                                   f"{train.name} (leakage: quality figures on {p.name} are optimistic)")
        if opposite:
            result.warnings.append(f"{p.name}: {opposite} sequences have a template-identical copy in {train.name} "
                                   "with the opposite label")
    result.summary["leakage"] = {"train_part": train.name, "parts": leakage}
