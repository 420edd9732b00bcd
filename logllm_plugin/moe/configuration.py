"""Config of the BERT+MoE sequence head, saved as `config.json` in a model directory."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

FORMAT_NAME = "logllm-moe-sequence-classifier"
FORMAT_VERSION = 1


@dataclass
class MoESequenceConfig:
    input_size: int  # line-embedding width (384 for MiniLM)
    vocab_size: int  # template ids 0..vocab_size-1; 0 = novel
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    num_experts: int = 4
    expert_ffn_size: int = 256
    top_p: float = 0.8
    max_positions: int = 256
    dropout: float = 0.1
    count_view: bool = False
    categories: list[str] = field(default_factory=lambda: ["normal", "anomaly"])

    @property
    def num_categories(self) -> int:
        return len(self.categories)

    def to_dict(self) -> dict:
        return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")

    @classmethod
    def from_dict(cls, data: dict) -> "MoESequenceConfig":
        data = dict(data)
        fmt, version = data.pop("format", None), data.pop("format_version", None)
        if fmt != FORMAT_NAME or version != FORMAT_VERSION:
            raise ValueError(
                f"not a logllm-plugin model of format {FORMAT_NAME} v{FORMAT_VERSION} (found {fmt!r} v{version!r})"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"model config has settings this version does not know: {', '.join(unknown)}")
        return cls(**data)
