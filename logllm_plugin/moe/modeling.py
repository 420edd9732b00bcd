"""BERT+MoE sequence classifier in the transformers manner: small named pieces, an output class.

Faithful to LogLLM's detector: projection of line embeddings, learned position embeddings, N
layers of self-attention + Top-P routed Mixture-of-Experts feed-forward, mean pooling, a binary
head. Additions: a category head, and (hybrid) a bag-of-templates channel, so the model can do at
least what a count-based classifier does on session data while keeping the order-aware part.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from logllm_plugin.moe.configuration import MoESequenceConfig


@dataclass
class MoESequenceOutput:
    logits: torch.Tensor  # [B] anomaly logit
    category_logits: torch.Tensor  # [B, C]
    aux_loss: torch.Tensor  # scalar load-balancing loss (0 in dense mode)


class TopPRouter(nn.Module):
    """Routes each token to the fewest experts whose probabilities sum to at least `top_p`."""

    def __init__(self, hidden_size: int, num_experts: int, top_p: float):
        super().__init__()
        self.gate = nn.Linear(hidden_size, num_experts, bias=False)
        self.num_experts = num_experts
        self.top_p = top_p

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = F.softmax(self.gate(x), dim=-1)  # [N, E]
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep an expert while the mass before it is still short of top_p (the first always stays).
        keep_sorted = (sorted_probs.cumsum(-1) - sorted_probs) < self.top_p
        keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
        weights = probs * keep
        weights = weights / weights.sum(-1, keepdim=True)
        return weights, probs


def load_balancing_loss(weights: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """Switch-style aux loss E * sum_e f_e * P_e; 1.0 when routing is perfectly balanced."""
    num_experts = probs.shape[-1]
    routed_share = (weights > 0).float().mean(0)  # f_e: share of tokens sent to each expert
    mean_prob = probs.mean(0)  # P_e
    return num_experts * (routed_share * mean_prob).sum() / (weights > 0).float().sum(-1).mean()


class Expert(nn.Module):
    def __init__(self, hidden_size: int, ffn_size: int, dropout: float):
        super().__init__()
        self.up = nn.Linear(hidden_size, ffn_size)
        self.down = nn.Linear(ffn_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(self.dropout(F.gelu(self.up(x))))


class MoEFeedForward(nn.Module):
    """Experts are tiny (E≈4): in training all run densely and the router's weights mix them
    (simple, and the gradient reaches every expert); at inference only the kept experts run."""

    def __init__(self, config: MoESequenceConfig):
        super().__init__()
        self.router = TopPRouter(config.hidden_size, config.num_experts, config.top_p)
        self.experts = nn.ModuleList(
            Expert(config.hidden_size, config.expert_ffn_size, config.dropout) for _ in range(config.num_experts)
        )

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor, dense: bool) -> tuple[torch.Tensor, torch.Tensor]:
        # x: [B, L, H]; token_mask: [B, L] True for real lines
        if not self.training and not dense:
            return self._routed(x, token_mask), x.new_zeros(())
        expert_out = torch.stack([expert(x) for expert in self.experts], dim=-2)  # [B, L, E, H]
        if dense:  # phase 1 of training: every expert, averaged
            return expert_out.mean(-2), x.new_zeros(())
        weights, probs = self.router(x)  # [B, L, E]
        out = (expert_out * weights.unsqueeze(-1)).sum(-2)
        real = token_mask.reshape(-1)
        aux = load_balancing_loss(weights.reshape(-1, weights.shape[-1])[real], probs.reshape(-1, probs.shape[-1])[real])
        return out, aux


    def _routed(self, x: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """Inference: each real line through only the experts its router kept, padding through none.

        The same sum as the dense path (which weights the other experts by exactly zero) at about
        half the expert compute; padded positions stay zero, and nothing downstream reads them.
        """
        hidden = x.shape[-1]
        real = token_mask.reshape(-1).nonzero().squeeze(-1)  # [N] flat indexes of real lines
        tokens = x.reshape(-1, hidden).index_select(0, real)  # [N, H]
        weights, _ = self.router(tokens)  # [N, E]
        mixed = torch.zeros_like(tokens)
        for e, expert in enumerate(self.experts):
            chosen = weights[:, e].nonzero().squeeze(-1)  # [n_e] lines routed to expert e
            if chosen.numel():
                mixed.index_add_(0, chosen, expert(tokens.index_select(0, chosen)) * weights[chosen, e : e + 1])
        out = x.new_zeros(x.shape[0] * x.shape[1], hidden)
        out.index_copy_(0, real, mixed)
        return out.reshape(x.shape)


class MoEEncoderLayer(nn.Module):
    def __init__(self, config: MoESequenceConfig):
        super().__init__()
        self.attn_norm = nn.LayerNorm(config.hidden_size)
        self.attention = nn.MultiheadAttention(
            config.hidden_size, config.num_heads, dropout=config.dropout, batch_first=True
        )
        self.ffn_norm = nn.LayerNorm(config.hidden_size)
        self.moe = MoEFeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor, dense: bool) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.attn_norm(x)
        attended, _ = self.attention(h, h, h, key_padding_mask=~token_mask, need_weights=False)
        x = x + self.dropout(attended)
        moe_out, aux = self.moe(self.ffn_norm(x), token_mask, dense)
        return x + self.dropout(moe_out), aux


class MoESequenceClassifier(nn.Module):
    def __init__(self, config: MoESequenceConfig):
        super().__init__()
        self.config = config
        self.projection = nn.Linear(config.input_size, config.hidden_size)
        # Each line also sees its predecessor: a swapped or skipped step shows up as a transition
        # never seen in training, which absolute positions alone learn slowly (DeepLog's insight).
        self.transition = nn.Linear(config.input_size, config.hidden_size, bias=False)
        self.input_norm = nn.LayerNorm(config.hidden_size)
        self.positions = nn.Embedding(config.max_positions, config.hidden_size)
        self.layers = nn.ModuleList(MoEEncoderLayer(config) for _ in range(config.num_layers))
        self.final_norm = nn.LayerNorm(config.hidden_size)
        pooled_size = config.hidden_size + 1  # + share of novel lines
        if config.count_view:
            # Sum of per-template vectors == a linear map of the template-count vector.
            self.template_bag = nn.EmbeddingBag(config.vocab_size, config.hidden_size, mode="sum")
            pooled_size += config.hidden_size
        self.head = nn.Sequential(nn.Linear(pooled_size, config.hidden_size), nn.GELU(), nn.Dropout(config.dropout))
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.category_classifier = nn.Linear(config.hidden_size, config.num_categories)

    def project_table(self, table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference: the input projections of each distinct line once, instead of per position.

        table [T, D] → (projection [T, H], transition [T + 1, H]); transition row T is the "no
        previous line" of a sequence's first line (zero, as `forward` pads it).
        """
        transition = self.transition(table)
        return self.projection(table), torch.cat([transition, transition.new_zeros(1, transition.shape[1])])

    def forward(
        self,
        embeddings: Optional[torch.Tensor],  # [B, L, D] line embeddings (cached by template)
        token_mask: torch.Tensor,  # [B, L] bool, True for real lines
        template_ids: torch.Tensor,  # [B, L] long, 0 = novel (and padding)
        dense: bool = False,
        lines: Optional[torch.Tensor] = None,  # [B, L, H] projected lines from `project_table`, instead of embeddings
    ) -> MoESequenceOutput:
        batch, length = token_mask.shape
        if length > self.config.max_positions:
            raise ValueError(f"sequence of {length} lines exceeds max_positions={self.config.max_positions}; window it")
        positions = torch.arange(length, device=token_mask.device)
        if lines is None:
            previous = F.pad(embeddings, (0, 0, 1, 0))[:, :-1]  # [B, L, D] line i-1 (zeros before the first)
            lines = self.projection(embeddings) + self.transition(previous)
        x = self.input_norm(lines) + self.positions(positions)[None]
        aux_total = x.new_zeros(())
        for layer in self.layers:
            x, aux = layer(x, token_mask, dense)
            aux_total = aux_total + aux
        x = self.final_norm(x)
        maskf = token_mask.unsqueeze(-1).to(x.dtype)  # [B, L, 1]
        lengths = maskf.sum(1).clamp(min=1.0)  # [B, 1]
        pooled = (x * maskf).sum(1) / lengths  # [B, H] mean over real lines
        novel_share = ((template_ids == 0) & token_mask).to(x.dtype).sum(1, keepdim=True) / lengths
        features = [pooled, novel_share]
        if self.config.count_view:
            weights = token_mask.to(x.dtype)  # padding contributes nothing to the bag
            features.append(self.template_bag(template_ids, per_sample_weights=weights))
        hidden = self.head(torch.cat(features, dim=-1))
        return MoESequenceOutput(
            logits=self.classifier(hidden).squeeze(-1),
            category_logits=self.category_classifier(hidden),
            aux_loss=aux_total / max(1, len(self.layers)),
        )
