"""`logllm-plugin train small`: templates → cached embeddings → two-phase BERT+MoE training.

Phase 1 trains with every expert averaged (a dense warm-up that keeps early routing from
collapsing); phase 2 turns the Top-P router on and adds the load-balancing loss. The checkpoint
kept is the phase-2 epoch with the best validation PR-AUC, and the threshold is the one with the
best validation F1.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from logllm_plugin import __version__
from logllm_plugin.artifacts import DETECTOR_FILE, weights_digest, write_json
from logllm_plugin.config import PluginConfig, config_to_dict
from logllm_plugin.detector import best_windows, sigmoid
from logllm_plugin.encoder import LineEncoder
from logllm_plugin.featurize import FeaturizedBatch, featurize, pad_batch, windows
from logllm_plugin.records import LogSequence
from logllm_plugin.templates import TemplateStore
from trainers.baseline import TemplateCountBaseline
from trainers.contamination import leave_out_alarming, leave_out_rare, screen_out_of_fold
from trainers.evaluation import best_f1_threshold, binary_metrics
from trainers.injection import inject_anomalies, truncated_copies
from trainers.novelty import NOVELTY_FILE, HistoryTable, NoveltyScorer, calibrate, variant_tolerance
from trainers.view_choice import HeldOutEvidence, choose_views
from trainers.view_choice import apply as apply_views

logger = logging.getLogger(__name__)

TEMPLATE_DROPOUT = 0.05  # share of training lines shown as "novel" so the novel signal is learned
# --normal-only: the share of held-out normal history the novelty view's calibration may flag.
TARGET_FPR = 0.02
# --normal-only: the model's own cut is the higher of the best F1 on injected anomalies and a cut
# above every held-out normal history score (this quantile of them). Its validation recall comes
# from injected anomalies, which it learns to catch, while real incidents need not look like them:
# at the 98% quantile the model added 1 of 57 HDFS test
# anomalies for 18 false positives (30 epochs) or 13 for 32 (10 epochs); above the top held-out
# score it added 0 for 0 and 12 for 0. What the model flags then is unlike all held-out normal
# history, and the novelty view keeps its own 2% calibration.
MODEL_NORMAL_QUANTILE = 1.0
# Model scores this close in logit space are one score (the same sequence, rounded differently):
# a threshold never sits between them (see cut_above).
TIE_LOGIT = 1e-4
# --normal-only trains on history plus about half as many injected copies, and long sequences
# give up to 16 windows each: 4,000 sequences made ~60,000 distinct windows and 808 s of training.
# Each epoch takes a random share of at most this many windows (the novelty view, not the epochs,
# carries unseen lines; the model needs enough passes to learn order and counts).
LABEL_FREE_EXAMPLES_PER_EPOCH = 1000
# --normal-only: normal history cut short (end of input, time limits), added as normal examples to
# training and validation, as a share of the history.
TRUNCATED_SHARE = 0.2
MIN_NORMAL_HISTORY = 10  # fewer normal sequences cannot tell normal variation from novelty
MIN_VALID_ANOMALIES = 20  # --normal-only validation with fewer labeled anomalies gets injected ones too


class TrainingDataError(ValueError):
    """Training data that cannot produce a model (one class only, nothing to learn from)."""


@dataclass
class TrainOutcome:
    model_dir: Path
    metrics: dict


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def split_holdout(sequences: list[LogSequence], fraction: float, how: str = "random",
                  seed: int = 0) -> tuple[list[LogSequence], list[LogSequence]]:
    """Hold out `fraction` of the input for the threshold: a seeded random share, the tail, or half each.

    All keep file order inside each part. The random share sees the same kinds of anomalies the
    model trains on, so the threshold it picks transfers; a chronological tail can hold only kinds
    the model never saw and then picks a threshold far too low (see TrainingConfig.holdout).
    "mixed" holds out half of the share from the tail and half at random from the rest: normal
    history's newest shapes reach the calibration without a threshold set on them alone.
    """
    n = len(sequences)
    size = min(max(int(round(n * fraction)), 1), n - 1)
    if how == "tail":
        return sequences[: n - size], sequences[n - size :]
    rng = np.random.default_rng(seed)
    if how == "mixed":
        tail = size // 2
        held = set(rng.choice(n - tail, size=size - tail, replace=False).tolist()) | set(range(n - tail, n))
    else:
        held = set(rng.choice(n, size=size, replace=False).tolist())
    return ([s for i, s in enumerate(sequences) if i not in held],
            [s for i, s in enumerate(sequences) if i in held])


def prepare_labels(train: list[LogSequence], valid: Optional[list[LogSequence]], config: PluginConfig,
                   normal_only: bool) -> tuple[list[LogSequence], list[LogSequence]]:
    seed = config.training.seed
    if valid is None:
        train, valid = split_holdout(train, config.training.valid_fraction, config.training.holdout,
                                     config.training.seed)
    if normal_only:
        train = inject_anomalies(train, config.training.inject_rate, seed) + truncated_copies(
            train, TRUNCATED_SHARE, seed)
        if sum(s.label == 1 for s in valid) < MIN_VALID_ANOMALIES:  # too few real ones to choose a cut
            valid = inject_anomalies(valid, config.training.inject_rate, seed + 1) + truncated_copies(
                valid, TRUNCATED_SHARE, seed + 1)
    unlabeled = sum(1 for s in train if s.label is None)
    if unlabeled:
        raise TrainingDataError(f"{unlabeled} training sequences have no label; add labels or use --normal-only")
    positives = sum(1 for s in train if s.label == 1)
    if normal_only and positives == 0:
        raise TrainingDataError(f"--normal-only: no anomaly could be injected into the {len(train)} training "
                                "sequences (they need at least one line)")
    if positives == 0 or positives == len(train):
        raise TrainingDataError(
            f"training data holds {positives} anomalous of {len(train)} sequences: both classes are needed "
            "(use --normal-only to train from normal history with injected anomalies)"
        )
    valid = [s for s in valid if s.label is not None]
    return train, valid


@dataclass
class _Example:
    template_ids: np.ndarray
    rows: np.ndarray
    label: int
    category: int  # index into categories, -1 when unknown
    weight: float  # how many identical training windows this one stands for


def build_examples(batch: FeaturizedBatch, sequences: Sequence[LogSequence], categories: list[str],
                   max_positions: int, max_windows: int = 16) -> list[_Example]:
    """Training windows, identical ones merged into one weighted example.

    Session logs repeat: HDFS's 6,352 training blocks hold a few hundred distinct sequences, so
    merging cuts an epoch's cost by an order of magnitude and leaves the weighted loss unchanged.
    """
    merged: dict[tuple, _Example] = {}
    for feats, seq in zip(batch.sequences, sequences):
        cat = categories.index(seq.category) if seq.label == 1 and seq.category in categories else -1
        spans = windows(len(feats), max_positions)
        if len(spans) > max_windows:
            spans = [spans[i] for i in np.linspace(0, len(spans) - 1, max_windows).round().astype(int)]
        for s, e in spans:
            key = (feats.rows[s:e].tobytes(), int(seq.label), cat)
            if key in merged:
                merged[key].weight += 1.0
            else:
                merged[key] = _Example(feats.template_ids[s:e], feats.rows[s:e], int(seq.label), cat, 1.0)
    return list(merged.values())


def length_bucketed_batches(examples: Sequence[_Example], batch_size: int, rng: np.random.Generator) -> list[list[int]]:
    """Batches of similar lengths (little padding), in random order, different every epoch."""
    noise = rng.random(len(examples))
    order = sorted(range(len(examples)), key=lambda i: (len(examples[i].template_ids), noise[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def _categories(train: Sequence[LogSequence]) -> list[str]:
    found = sorted({s.category for s in train if s.label == 1 and s.category and s.category != "normal"})
    return ["normal"] + (found or ["anomaly"])


def _score(model, batch: FeaturizedBatch, batch_size: int = 128) -> np.ndarray:
    """Max-over-windows probability per sequence (the detector's rule, shared with it)."""
    return sigmoid(np.array([logit for logit, _, _, _ in best_windows(model, batch, batch_size)]))


@dataclass
class _Prepared:
    """The training data as the model sees it: labeled (injected) sequences, templates, features."""

    train: list[LogSequence]
    valid: list[LogSequence]
    normal_history: list[LogSequence]  # what the novelty table learns
    training_part_history: list[LogSequence]  # --normal-only: the history less its validation part
    left_out_rare: int
    left_out_alarm: int
    left_out_of_fold: int
    store: TemplateStore
    encoder: LineEncoder
    train_batch: FeaturizedBatch
    valid_batch: Optional[FeaturizedBatch]
    categories: list[str]

    @property
    def valid_labels(self) -> list[int]:
        return [s.label for s in self.valid]

    def has_two_class_validation(self) -> bool:
        return bool(self.valid_batch) and 0 < sum(self.valid_labels) < len(self.valid_labels)


@dataclass
class _Thresholds:
    threshold: float  # what detector.json says: 0.5 for label-free and count-gated models
    model_threshold: Optional[float]  # the model's own cut where the decision combines views
    gate: Optional[str]  # the count-view gate chosen for a supervised model, if any
    use_model: bool  # label-free: the model's score takes part in the decision (view_choice)
    metrics: dict
    novelty: NoveltyScorer
    baseline: TemplateCountBaseline


def train_small(
    train: list[LogSequence],
    valid: Optional[list[LogSequence]],
    config: PluginConfig,
    out_dir: str | Path,
    *,
    normal_only: bool = False,
    progress: Optional[Callable[[int, int, dict], None]] = None,
) -> TrainOutcome:
    """Train the detector and write its model directory: prepare the data, train epoch by epoch
    keeping the best gated epoch, choose the threshold(s), save."""
    seed_everything(config.training.seed)
    data = _prepare(train, valid, config, normal_only)
    moe_config, model, history = _fit(data, config, normal_only, progress)
    chosen = _choose_thresholds(model, data, config, normal_only, history)
    out = _save(Path(out_dir), model, moe_config, data, chosen, config, normal_only)
    return TrainOutcome(out, chosen.metrics)


def _prepare(train: list[LogSequence], valid: Optional[list[LogSequence]], config: PluginConfig,
             normal_only: bool) -> _Prepared:
    tc = config.training
    left_out_rare = alarmed = screened = 0
    encoder = LineEncoder(config.encoder.training_config())  # the saved config keeps the scoring dtype
    if normal_only:
        mask = TemplateStore(config.templates).mask
        train, left_out_rare = leave_out_rare(train, mask, tc.leave_out_rare_share)
        logger.info("left out %d history sequences holding the rarest lines (possible incidents)", left_out_rare)
        train, alarmed = leave_out_alarming(train, mask, tc.leave_out_alarm_share)
        logger.info("left out %d history sequences holding seldom lines with alarm words (possible incidents)", alarmed)
        if tc.oof_screen_share > 0:
            train, screened = screen_history(train, config, encoder)
            logger.info("left out %d history sequences holding lines far from every other part of the history "
                        "(possible incidents)", screened)
    normal_seqs = normal_history(train, valid, normal_only)
    if normal_only and valid is None:
        train, valid = split_holdout(train, tc.valid_fraction, tc.holdout, tc.seed)
    training_part_history = [s for s in train if s.label != 1] if normal_only else []
    train, valid = prepare_labels(train, valid, config, normal_only)
    store = TemplateStore(config.templates)
    store.learn(line for seq in train for line in seq.lines)
    train_batch = featurize(store, encoder, [s.lines for s in train])
    valid_batch = featurize(store, encoder, [s.lines for s in valid]) if valid else None
    return _Prepared(train, valid, normal_seqs, training_part_history, left_out_rare, alarmed, screened, store, encoder,
                     train_batch, valid_batch, _categories(train))


def _fit(data: _Prepared, config: PluginConfig, normal_only: bool, progress) -> tuple[object, object, list[dict]]:
    """(model config, the model at its best gated epoch, one record per epoch)."""
    import torch

    from logllm_plugin.moe.configuration import MoESequenceConfig
    from logllm_plugin.moe.modeling import MoESequenceClassifier

    tc, mc = config.training, config.model
    moe_config = MoESequenceConfig.for_data(mc, input_size=data.encoder.embedding_dim(),
                                            vocab_size=data.store.vocab_size, categories=data.categories)
    model = MoESequenceClassifier(moe_config)
    examples = build_examples(data.train_batch, data.train, data.categories, mc.max_positions,
                              tc.max_windows_per_sequence)
    pos = sum(x.weight for x in examples if x.label == 1)
    neg = sum(x.weight for x in examples if x.label == 0)
    pos_weight = torch.tensor(math.sqrt(neg / max(pos, 1.0)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=tc.learning_rate, weight_decay=tc.weight_decay)
    dense_epochs = min(int(round(tc.epochs * tc.dense_epochs_fraction)), tc.epochs - 1)  # ≥1 gated epoch
    train_table = torch.from_numpy(data.train_batch.table)
    rng = np.random.default_rng(tc.seed)
    logger.info("training on %d distinct windows (%d sequences)", len(examples), len(data.train))

    best_state, best_key, history = None, None, []
    for epoch in range(tc.epochs):
        dense = epoch < dense_epochs
        epoch_examples = examples
        if normal_only and len(examples) > LABEL_FREE_EXAMPLES_PER_EPOCH:
            # a fresh random share each epoch: every window is still seen over the run
            pick = rng.choice(len(examples), size=LABEL_FREE_EXAMPLES_PER_EPOCH, replace=False)
            epoch_examples = [examples[k] for k in pick]
        loss = _epoch(model, optimizer, epoch_examples, train_table, pos_weight, dense, len(data.categories), tc, rng)
        record = {"epoch": epoch + 1, "phase": "dense" if dense else "gated", "loss": loss}
        if not dense:
            key = _select_key(model, data, record)
            if best_key is None or key > best_key:
                best_key, best_state = key, {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append(record)
        if progress:
            progress(epoch + 1, tc.epochs, record)
    model.load_state_dict(best_state)
    return moe_config, model, history


def _epoch(model, optimizer, examples: Sequence[_Example], train_table, pos_weight, dense: bool, n_categories: int,
           tc, rng: np.random.Generator) -> float:
    """One pass over `examples`; the weighted mean loss."""
    import torch

    model.train()
    total = total_weight = 0.0
    for batch_indexes in length_bucketed_batches(examples, tc.batch_size, rng):
        chunk = [examples[k] for k in batch_indexes]
        items = []
        for ex in chunk:
            ids = ex.template_ids.copy()
            ids[rng.random(len(ids)) < TEMPLATE_DROPOUT] = 0
            items.append((ids, ex.rows))
        emb, mask, ids_t = pad_batch(items, train_table)
        if tc.embedding_noise > 0:
            emb = emb + tc.embedding_noise * torch.randn_like(emb) * mask.unsqueeze(-1)
        y = torch.tensor([ex.label for ex in chunk], dtype=torch.float32)
        w = torch.tensor([ex.weight for ex in chunk], dtype=torch.float32)
        cats = torch.tensor([ex.category for ex in chunk])
        out = model(emb, mask, ids_t, dense=dense)
        per_example = torch.nn.functional.binary_cross_entropy_with_logits(
            out.logits, y, pos_weight=pos_weight, reduction="none")
        loss = (per_example * w).sum() / w.sum()
        known = cats >= 0
        if known.any() and n_categories > 2:
            ce = torch.nn.functional.cross_entropy(out.category_logits[known], cats[known], reduction="none")
            loss = loss + 0.5 * (ce * w[known]).sum() / w[known].sum()
        if not dense:
            loss = loss + tc.aux_loss_weight * out.aux_loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        total += loss.item() * float(w.sum())
        total_weight += float(w.sum())
    return round(total / total_weight, 5)


def _select_key(model, data: _Prepared, record: dict) -> tuple:
    """How good a gated epoch is (higher wins): PR-AUC, F1 on validation (training when the
    validation has one class), then a lower loss. Adds the figures to `record`."""
    scored_batch, scored_labels = ((data.valid_batch, data.valid_labels) if data.has_two_class_validation()
                                   else (data.train_batch, [s.label for s in data.train]))
    scores = _score(model, scored_batch)
    m = binary_metrics(scored_labels, scores, best_f1_threshold(scored_labels, scores))
    record.update(valid_pr_auc=m["pr_auc"], valid_f1=m["f1"])
    return (m["pr_auc"] or 0.0, m["f1"], -record["loss"])


def _choose_thresholds(model, data: _Prepared, config: PluginConfig, normal_only: bool,
                       history: list[dict]) -> _Thresholds:
    """The best-F1 threshold on validation, then what each kind of model decides with: label-free
    ones combine the model (cut at a target FPR) with the novelty view, supervised ones may gate
    on the count view. The metrics say which and what each scored."""
    valid, valid_labels = data.valid, data.valid_labels
    threshold_labels, threshold_scores, threshold_source = valid_labels, None, "validation"
    if data.has_two_class_validation():
        threshold_scores = _score(model, data.valid_batch)
    else:
        threshold_source = "training (validation had one class only)"
        threshold_labels = [s.label for s in data.train]
        threshold_scores = _score(model, data.train_batch)
    threshold = best_f1_threshold(threshold_labels, threshold_scores)
    model_threshold = None
    novelty = fit_novelty(data.store, data.encoder, data.normal_history, normal_only)
    use_model, view_report = True, None
    if normal_only:
        model_threshold = normal_fpr_threshold(threshold, valid, threshold_scores, threshold_labels)
        combined = None
        if threshold_source == "validation":
            use_model, view_report = choose_label_free_views(novelty, data, threshold_scores >= model_threshold)
            combined = combined_scores(novelty, model_threshold if use_model else None, threshold_scores,
                                       [list(s.lines) for s in valid], data.store, data.encoder)

    baseline = TemplateCountBaseline(data.store.vocab_size).fit(
        [f.template_ids for f in data.train_batch.sequences], [s.label for s in data.train], seed=config.training.seed)
    metrics = {
        "train_sequences": len(data.train), "train_anomalies": int(sum(s.label for s in data.train)),
        "valid_sequences": len(valid), "templates": len(data.store), "categories": data.categories,
        "threshold_source": threshold_source, "history": history,
        "valid": binary_metrics(threshold_labels, threshold_scores, threshold),
    }
    if data.valid_batch:
        base_scores = baseline.predict_proba([f.template_ids for f in data.valid_batch.sequences])
        metrics["valid_baseline"] = binary_metrics(valid_labels, base_scores, 0.5)
    metrics["novelty_calibration"] = novelty.to_dict()["calibration"] if normal_only else None
    metrics["view_choice"] = view_report
    metrics["left_out_rare"] = data.left_out_rare
    metrics["left_out_alarm"] = data.left_out_alarm
    metrics["left_out_of_fold"] = data.left_out_of_fold
    gate = None
    if not normal_only and data.valid_batch and threshold_source == "validation":
        gate, metrics["count_gate"] = choose_count_gate(threshold_scores, threshold, base_scores, valid_labels)
        if gate:
            metrics["valid_model_only"] = metrics["valid"]
            metrics["valid"] = metrics["count_gate"][gate]
            model_threshold, threshold = threshold, 0.5
    if normal_only:
        metrics["model_threshold"] = model_threshold
        if combined is not None:
            metrics["valid_model_only"] = metrics["valid"]
            metrics["valid"] = binary_metrics(threshold_labels, combined, 0.5)
            check_not_degenerate(metrics["valid"], threshold_labels)
        threshold = 0.5
    return _Thresholds(threshold, model_threshold, gate, use_model, metrics, novelty, baseline)


def _save(out: Path, model, moe_config, data: _Prepared, chosen: _Thresholds, config: PluginConfig,
          normal_only: bool) -> Path:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    moe_config.save(out / "config.json")
    data.store.save(out / "templates.json")
    data.encoder.save_cache(out)
    write_json(out / "baseline.json", chosen.baseline.to_dict())
    write_json(out / "metrics.json", chosen.metrics)
    write_json(out / NOVELTY_FILE, chosen.novelty.to_dict())
    plugin = config_to_dict(config)
    model_threshold, gate = chosen.model_threshold, chosen.gate
    write_json(out / DETECTOR_FILE, {
        "format_version": 1,
        "plugin_version": __version__,
        "threshold": chosen.threshold,
        "model_version": f"{out.name}-{weights_digest(out / 'model.safetensors')}",
        "templates": plugin["templates"],
        "encoder": plugin["encoder"],
        "sequencer": plugin["sequencer"],
        "training": plugin["training"],
        # label-free models score as max(model, novelty); supervised ones keep the table for eval's rule
        **({"novelty": {"file": NOVELTY_FILE, "model_threshold": model_threshold, "use_model": chosen.use_model}}
           if normal_only else {}),
        **({"count_gate": {"mode": gate, "file": "baseline.json", "model_threshold": model_threshold}} if gate else {}),
    })
    return out


def normal_history(train: list[LogSequence], valid: Optional[list[LogSequence]], normal_only: bool) -> list[LogSequence]:
    """The sequences the novelty table learns from: all of the input for --normal-only (it is
    history treated as normal, a few unlabeled anomalies included), else the normal-labeled ones."""
    pool = list(train) + [s for s in (valid or []) if s.label == 0]
    # --normal-only history may hold sequences an operator marked anomalous (label 1): not normal
    history = [s for s in pool if s.label != 1] if normal_only else [s for s in pool if s.label == 0]
    if normal_only and len(history) < MIN_NORMAL_HISTORY:
        raise TrainingDataError(
            f"--normal-only needs at least {MIN_NORMAL_HISTORY} sequences of normal history, got {len(history)}: "
            "with fewer, normal variation cannot be told from novelty (collect more history first)")
    return history


def template_variants(store: TemplateStore, history: Sequence[LogSequence]) -> list[set[str]]:
    """The masked lines of each template the history holds (the variants of one event)."""
    variants: dict[int, set[str]] = {}
    for s in history:
        for line in s.lines:
            match = store.lookup(line)
            variants.setdefault(match.template_id, set()).add(match.text)
    return list(variants.values())


def screen_history(history: list[LogSequence], config: PluginConfig, encoder: LineEncoder) -> tuple[list[LogSequence], int]:
    """--normal-only history without the sequences the out-of-fold screen flags
    (trainers/contamination.py), with the variant tolerance of templates mined on this history."""
    store = TemplateStore(config.templates)
    unlabeled = [s for s in history if s.label != 1]
    store.learn(line for s in unlabeled for line in s.lines)
    tolerance = variant_tolerance(template_variants(store, unlabeled), encoder.encode)
    return screen_out_of_fold(history, store.mask, encoder.encode, tolerance, config.training.oof_screen_share)


def fit_novelty(store: TemplateStore, encoder: LineEncoder, history: list[LogSequence],
                calibrated: bool) -> NoveltyScorer:
    """The history table (every model keeps one for eval's novelty rule) and, for label-free
    models, the cuts calibrated on held-out folds of the same history."""
    masked = [[store.mask(line) for line in s.lines] for s in history]
    table = HistoryTable.fit(masked)
    if not calibrated:
        from trainers.novelty import Calibration

        return NoveltyScorer(table, Calibration(measured={"note": "not calibrated (supervised model)"}))
    return NoveltyScorer(table, calibrate(masked, encoder.encode, template_variants(store, history), TARGET_FPR))


def normal_fpr_threshold(f1_threshold: float, valid: list[LogSequence], scores, labels,
                         quantile: float = MODEL_NORMAL_QUANTILE) -> float:
    """The model's own cut: never below the MODEL_NORMAL_QUANTILE of its scores on held-out
    normal sequences (the genuine ones, not injected copies), and never on a held-out score.

    Identical normal sequences score identically, so the quantile often lands on a whole cluster
    of them (27 test requests of one workflow on the generated set). A cut one ulp above that
    score, as it was, flipped the cluster with rounding alone: the detector compares the shifted
    logit with 0.5, and 1e-7 embedding noise or another evaluation order moved F1 by 0.08. The
    cut goes to the middle, in logit space, of the gap above the quantile's cluster instead.
    """
    normal = [float(x) for x, y in zip(scores, labels) if y == 0] \
        if valid and len(valid) == len(scores) else []
    if not normal:
        return float(f1_threshold)
    cut = float(np.quantile(normal, quantile))
    return float(min(max(f1_threshold, cut_above(normal, cut)), 1.0 - 1e-9))


def _logit(p) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=float), 1e-12, 1 - 1e-12)
    return np.log(q / (1 - q))


def cut_above(scores: Sequence[float], cut: float, tie: float = TIE_LOGIT) -> float:
    """A threshold above `cut` that keeps every score at or near it (within `tie` in logit space:
    the same sequence after rounding) below, halfway in logit space to the next higher score, or
    the gap to the top score's cluster mirrored when none lies above (so noise cannot tip it over)."""
    logits = _logit(scores)
    c = float(_logit(cut))
    above = logits[logits > c + tie]
    if above.size:
        mid = (c + float(above.min())) / 2
    else:
        below = logits[logits < c - tie]
        gap = c - float(below.max()) if below.size else 1.0
        mid = c + max(gap / 2, tie)
    return float(1.0 / (1.0 + np.exp(-mid)))


def combined_scores(novelty: NoveltyScorer, model_threshold: Optional[float], model_scores, sequences,
                    store: TemplateStore, encoder: LineEncoder) -> np.ndarray:
    """Validation scores as the detector will compute them: max(shifted model score, novelty), or
    the novelty score alone when `model_threshold` is None (the views left the model out)."""
    masked = [[store.mask(line) for line in lines] for lines in sequences]
    novelty_scores = novelty.score_all(masked, encoder.encode)
    if model_threshold is None:
        return novelty_scores
    shift = np.log(model_threshold / (1.0 - model_threshold))
    p = np.clip(np.asarray(model_scores, dtype=float), 1e-12, 1 - 1e-12)
    shifted = sigmoid(np.log(p / (1 - p)) - shift)
    return np.maximum(shifted, novelty_scores)


def choose_label_free_views(novelty: NoveltyScorer, data: _Prepared, model_flags) -> tuple[bool, dict]:
    """Set the novelty scorer's views to the combination that does best on the validation part
    against a table of the training part alone (trainers/view_choice.py); whether the model takes
    part, and the figures behind the choice."""
    masked = lambda seqs: [[data.store.mask(line) for line in s.lines] for s in seqs]  # noqa: E731
    table = HistoryTable.fit(masked(data.training_part_history))
    evidence = HeldOutEvidence.measure(table, masked(data.valid), data.encoder.encode)
    views, report = choose_views(novelty.calibration, evidence, model_flags, data.valid_labels)
    apply_views(views, novelty.calibration)
    logger.info("label-free views: %s", views.label())
    return views.use_model, report


def check_not_degenerate(m: dict, labels) -> None:
    """A label-free cut that flags every held-out sequence, or none of the injected anomalies, is a
    model users cannot use: say so at training time rather than in production."""
    if m["tn"] == 0 and m["n"] > m["anomalies"]:
        raise TrainingDataError("the calibrated detector flags every held-out normal sequence: the history is too "
                                "varied for a label-free cut (give more history, or labels)")
    if m["tp"] == 0 and m["anomalies"]:
        logger.warning("the label-free detector catches none of the injected anomalies in validation")


def choose_count_gate(model_scores, model_threshold: float, count_scores, labels) -> tuple[Optional[str], dict]:
    """Model alone, counts alone (`count`) or the higher of both (`max`), by validation F1.

    On session-style data (a key per workflow, order mostly fixed) a logistic regression on
    template counts can edge out the sequence model; the gate keeps whichever validation favours,
    the model on ties, so supervised training never ends below its own count baseline there.
    """
    shift = np.log(model_threshold / (1.0 - model_threshold))
    p = np.clip(np.asarray(model_scores, dtype=float), 1e-12, 1 - 1e-12)
    shifted = sigmoid(np.log(p / (1 - p)) - shift)
    options = {"model": binary_metrics(labels, model_scores, model_threshold),
               "max": binary_metrics(labels, np.maximum(shifted, count_scores), 0.5),
               "count": binary_metrics(labels, count_scores, 0.5)}
    best = max(options, key=lambda k: (options[k]["f1"], k == "model", k == "max"))
    return (None if best == "model" else best), {**options, "chosen": best}
