"""Sequences → template ids + rows of an embedding table, and the padded tensors the model eats.

Embeddings are shared per template text, so a batch is an index into one small table rather
than a copy per line: this is what keeps scoring cheap once templates are cached.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from logllm_plugin.encoder import LineEncoder
from logllm_plugin.templates import TemplateStore


@dataclass
class FeaturizedSequence:
    template_ids: np.ndarray  # [L] int64, 0 = novel
    rows: np.ndarray  # [L] int64 rows of the batch's embedding table

    def __len__(self) -> int:
        return len(self.template_ids)


@dataclass
class FeaturizedBatch:
    sequences: list[FeaturizedSequence]
    table: np.ndarray  # [T, D] float32 embeddings, one row per distinct masked line
    texts: list[str] = field(default_factory=list)  # [T] the masked line of each table row

    def masked_lines(self, index: int) -> tuple[str, ...]:
        """What the model sees of sequence `index`: its masked lines in order."""
        return tuple(self.texts[r] for r in self.sequences[index].rows)


def featurize(store: TemplateStore, encoder: LineEncoder, sequences: Sequence[Sequence[str]]) -> FeaturizedBatch:
    row_of: dict[str, int] = {}
    texts: list[str] = []
    out = []
    for lines in sequences:
        ids = np.empty(len(lines), dtype=np.int64)
        rows = np.empty(len(lines), dtype=np.int64)
        for i, line in enumerate(lines):
            match = store.lookup(line)
            row = row_of.get(match.text)
            if row is None:
                row = row_of[match.text] = len(texts)
                texts.append(match.text)
            ids[i] = match.template_id
            rows[i] = row
        out.append(FeaturizedSequence(ids, rows))
    table = encoder.encode(texts) if texts else np.zeros((0, encoder.embedding_dim()), np.float32)
    return FeaturizedBatch(out, table, texts)


def novel_template_counts(batch: FeaturizedBatch) -> list[int]:
    """Distinct templates in each sequence that training never saw."""
    return [len({int(r) for r, t in zip(s.rows, s.template_ids) if t == 0}) for s in batch.sequences]


def familiarity(batch: FeaturizedBatch) -> list[float]:
    """Per sequence: the share of its lines whose masked form matched a template seen in training."""
    return [float(np.count_nonzero(s.template_ids)) / len(s) if len(s) else 0.0 for s in batch.sequences]


def windows(length: int, max_positions: int) -> list[tuple[int, int]]:
    """Half-overlapping windows covering every line; one window when the sequence fits."""
    if length <= max_positions:
        return [(0, length)]
    stride = max(1, max_positions // 2)
    starts = list(range(0, length - max_positions + 1, stride))
    if starts[-1] + max_positions < length:
        starts.append(length - max_positions)
    return [(s, s + max_positions) for s in starts]


def _padded(items: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """template_ids [B, L], rows [B, L], token_mask [B, L] of (template_ids, rows) pairs, zero-padded."""
    length = max(1, max(len(ids) for ids, _ in items))
    ids = np.zeros((len(items), length), dtype=np.int64)
    rows = np.zeros((len(items), length), dtype=np.int64)
    mask = np.zeros((len(items), length), dtype=bool)
    for b, (t, r) in enumerate(items):
        ids[b, : len(t)] = t
        rows[b, : len(r)] = r
        mask[b, : len(t)] = True
    return ids, rows, mask


def pad_batch(items: Sequence[tuple[np.ndarray, np.ndarray]], table, device=None):
    """(template_ids, rows) pairs → embeddings [B, L, D], token_mask [B, L], template_ids [B, L]."""
    import torch

    ids, rows, mask = _padded(items)
    table_t = table if isinstance(table, torch.Tensor) else torch.from_numpy(table)
    rows_t = torch.from_numpy(rows)
    embeddings = table_t[rows_t] if len(table_t) else torch.zeros((*rows.shape, 1))
    embeddings = embeddings * torch.from_numpy(mask).unsqueeze(-1).to(embeddings.dtype)
    tensors = (embeddings, torch.from_numpy(mask), torch.from_numpy(ids))
    if device is not None:
        tensors = tuple(t.to(device) for t in tensors)
    return tensors


def pad_rows(items: Sequence[tuple[np.ndarray, np.ndarray]], no_previous: int, device=None):
    """(template_ids, rows) pairs → rows [B, L], previous rows [B, L], token_mask [B, L], template_ids [B, L].

    For models that gather projected table rows (`project_table`): `previous[b, i]` is the row of
    line i-1, `no_previous` for a first line. Padding points at row 0 and is masked out.
    """
    import torch

    ids, rows, mask = _padded(items)
    previous = np.empty_like(rows)
    previous[:, 0] = no_previous
    previous[:, 1:] = rows[:, :-1]
    tensors = tuple(torch.from_numpy(a) for a in (rows, previous, mask, ids))
    if device is not None:
        tensors = tuple(t.to(device) for t in tensors)
    return tensors
