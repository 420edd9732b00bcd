"""Template mining: mask the variables of a line and give it a stable template id (Drain3).

Training learns templates (`learn`), then freezes them; detection only matches (`lookup`), so a
line unseen in training gets id 0 (`NOVEL_ID`). Novel templates are a signal of their own
(DESIGN §1).

Two views of a line: the Drain template id feeds the count view (it groups lines whose
non-numeric words vary), while the encoder embeds the *masked line*. Drain's generalised
template can merge distinct events that share most tokens ("FATAL data TLB error interrupt"
and "FATAL debug interrupt enable" become "FATAL <*> <*> <*>"); the masked line keeps their
words, and masked lines repeat about as much as templates do (20,000 BGL lines → 281). State is saved as plain JSON (no jsonpickle,
whose decoder can build arbitrary objects).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from drain3.drain import Drain, LogCluster

from logllm_plugin.config import TemplateConfig
from logllm_plugin.variable_masks import MASKS, PARAM, LineMasker

NOVEL_ID = 0
STATE_VERSION = 1


@dataclass(frozen=True)
class TemplateMatch:
    template_id: int  # NOVEL_ID when the line matches no template learned in training
    text: str  # the masked line: what the encoder embeds and the cache is keyed by

    @property
    def novel(self) -> bool:
        return self.template_id == NOVEL_ID


class TemplateStore:
    """Drain3 clusters plus the masker, frozen after training."""

    def __init__(self, config: Optional[TemplateConfig] = None):
        self.config = config or TemplateConfig()
        self.masks = [list(m) for m in MASKS]
        self._masker = LineMasker(self.masks)
        self.drain = Drain(
            depth=self.config.tree_depth,
            sim_th=self.config.similarity_threshold,
            max_children=self.config.max_children,
            param_str=PARAM,
        )
        self._match_cache: dict[str, TemplateMatch] = {}

    def __len__(self) -> int:
        return len(self.drain.id_to_cluster)

    @property
    def vocab_size(self) -> int:
        """Ids run 1..max; 0 is reserved for novel templates."""
        return self.drain.clusters_counter + 1

    def mask(self, line: str) -> str:
        return self._masker.mask(line[: self.config.max_template_chars])

    def learn(self, lines: Iterable[str]) -> None:
        """Add training lines; templates may still generalise until `lookup` is used."""
        for line in lines:
            self.drain.add_log_message(self.mask(line))
        self._match_cache.clear()

    def clear_caches(self) -> None:
        """Forget masked tokens and matched lines (benchmarks measure a cold start with this)."""
        self._match_cache.clear()
        self._masker.clear_cache()

    def lookup(self, line: str) -> TemplateMatch:
        masked = self.mask(line)
        hit = self._match_cache.get(masked)
        if hit is not None:
            return hit
        cluster = self.drain.match(masked, full_search_strategy="fallback")
        result = TemplateMatch(NOVEL_ID if cluster is None else cluster.cluster_id, masked)
        if len(self._match_cache) < 200_000:  # masked lines repeat a lot; bound the memory anyway
            self._match_cache[masked] = result
        return result

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        state = {
            "version": STATE_VERSION,
            "masks": self.masks,
            "clusters_counter": self.drain.clusters_counter,
            "clusters": [
                {"id": c.cluster_id, "tokens": list(c.log_template_tokens), "size": c.size}
                for c in sorted(self.drain.clusters, key=lambda c: c.cluster_id)
            ],
        }
        Path(path).write_text(json.dumps(state, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, config: Optional[TemplateConfig] = None) -> "TemplateStore":
        state = json.loads(Path(path).read_text(encoding="utf-8"))
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"{path}: template store version {state.get('version')!r}, expected {STATE_VERSION}")
        store = cls(config)
        if store.masks != state.get("masks"):
            # Masks define what a template is: a model keeps the masks it was trained with.
            store.masks = state["masks"]
            store._masker = LineMasker(store.masks)
        for item in state["clusters"]:
            cluster = LogCluster(item["tokens"], item["id"])
            cluster.size = item["size"]
            store.drain.id_to_cluster[cluster.cluster_id] = cluster
            store.drain.add_seq_to_prefix_tree(store.drain.root_node, cluster)
        store.drain.clusters_counter = state["clusters_counter"]
        return store
