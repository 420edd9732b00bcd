import numpy as np
import torch

from logllm_plugin.moe.configuration import MoESequenceConfig
from logllm_plugin.moe.modeling import MoESequenceClassifier, TopPRouter, load_balancing_loss


def tiny(**kw):
    base = dict(input_size=8, vocab_size=10, hidden_size=16, num_layers=2, num_heads=2, num_experts=4,
                expert_ffn_size=32, max_positions=12, dropout=0.0)
    base.update(kw)
    return MoESequenceConfig(**base)


def test_router_keeps_experts_until_their_probability_reaches_top_p():
    router = TopPRouter(hidden_size=4, num_experts=4, top_p=0.8)
    with torch.no_grad():
        router.gate.weight.zero_()
        router.gate.weight[:, 0] = torch.log(torch.tensor([0.5, 0.35, 0.1, 0.05]))
    weights, probs = router(torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(probs, torch.tensor([[0.5, 0.35, 0.1, 0.05]]), atol=1e-5)
    # 0.5 < 0.8 so the second expert joins; 0.85 >= 0.8 so the third does not.
    assert (weights[0] > 0).tolist() == [True, True, False, False]
    assert torch.allclose(weights.sum(-1), torch.ones(1))
    assert torch.allclose(weights[0, :2], torch.tensor([0.5, 0.35]) / 0.85, atol=1e-5)


def test_a_dominant_expert_is_routed_alone():
    router = TopPRouter(hidden_size=2, num_experts=3, top_p=0.8)
    with torch.no_grad():
        router.gate.weight.copy_(torch.tensor([[10.0, 0.0], [0.0, 0.0], [0.0, 0.0]]))
    weights, _ = router(torch.tensor([[1.0, 0.0]]))
    assert (weights[0] > 0).tolist() == [True, False, False]


def test_load_balancing_loss_is_one_when_balanced_and_higher_when_collapsed():
    uniform = torch.full((8, 4), 0.25)
    balanced = load_balancing_loss(uniform, uniform)
    collapsed_w = torch.zeros(8, 4)
    collapsed_w[:, 0] = 1.0
    collapsed_p = torch.tensor([[0.97, 0.01, 0.01, 0.01]]).repeat(8, 1)
    assert torch.isclose(balanced, torch.tensor(1.0))
    assert load_balancing_loss(collapsed_w, collapsed_p) > 3.0


def test_padding_does_not_change_the_score():
    torch.manual_seed(0)
    model = MoESequenceClassifier(tiny()).eval()
    emb = torch.randn(1, 5, 8)
    ids = torch.tensor([[1, 2, 3, 2, 1]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    padded_emb = torch.cat([emb, torch.zeros(1, 3, 8)], 1)
    padded_ids = torch.cat([ids, torch.zeros(1, 3, dtype=torch.long)], 1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], 1)
    a = model(emb, mask, ids).logits
    b = model(padded_emb, padded_mask, padded_ids).logits
    assert torch.allclose(a, b, atol=1e-5)


def test_the_head_sees_line_order():
    torch.manual_seed(0)
    model = MoESequenceClassifier(tiny()).eval()
    emb = torch.randn(1, 6, 8)
    ids = torch.arange(1, 7)[None]
    mask = torch.ones(1, 6, dtype=torch.bool)
    swapped = emb[:, [1, 0, 2, 3, 4, 5]]
    assert not torch.allclose(model(emb, mask, ids).logits, model(swapped, mask, ids[:, [1, 0, 2, 3, 4, 5]]).logits)


def test_dense_phase_averages_experts_and_has_no_aux_loss():
    torch.manual_seed(0)
    model = MoESequenceClassifier(tiny()).eval()
    emb, mask, ids = torch.randn(2, 4, 8), torch.ones(2, 4, dtype=torch.bool), torch.ones(2, 4, dtype=torch.long)
    dense = model(emb, mask, ids, dense=True)
    gated = model.train()(emb, mask, ids, dense=False)  # the aux loss is a training signal
    assert dense.aux_loss.item() == 0.0 and gated.aux_loss.item() > 0.0
    assert dense.logits.shape == (2,) and dense.category_logits.shape == (2, 2)


def test_inference_runs_only_the_routed_experts_and_matches_the_dense_mix():
    torch.manual_seed(0)
    model = MoESequenceClassifier(tiny(num_experts=4)).eval()
    emb = torch.randn(3, 5, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    moe = model.layers[0].moe
    x = torch.randn(3, 5, moe.router.gate.in_features)
    calls = []
    for expert in moe.experts:
        expert.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    with torch.no_grad():
        routed, aux = moe(x, mask, dense=False)
        weights, _ = moe.router(x)
        dense_mix = (torch.stack([e(x) for e in moe.experts], dim=-2) * weights.unsqueeze(-1)).sum(-2)
    assert aux.item() == 0.0
    assert torch.allclose(routed[mask], dense_mix[mask], atol=1e-6)
    assert torch.all(routed[~mask] == 0)  # padding is never computed
    kept = int((weights[mask] > 0).sum())
    assert sum(calls[:4]) == kept < 4 * int(mask.sum())  # each real line only through its kept experts
    ids = torch.ones(3, 5, dtype=torch.long)
    with torch.no_grad():
        sparse = model(emb, mask, ids)
        for layer in model.layers:  # the dense-mix branch (dropout is 0 here, so nothing else changes)
            layer.moe.training = True
        dense = model(emb, mask, ids)
    assert torch.allclose(sparse.logits, dense.logits, atol=1e-5)
    assert torch.allclose(sparse.category_logits, dense.category_logits, atol=1e-5)


def test_original_paper_size_head_builds():
    from logllm_plugin.config import ModelConfig

    o = ModelConfig.original()
    config = tiny(hidden_size=o.hidden_size, num_layers=o.num_layers, num_heads=o.num_heads,
                  num_experts=o.num_experts, expert_ffn_size=o.expert_ffn_size, input_size=384)
    model = MoESequenceClassifier(config)
    layers = [m for m in model.layers]
    assert len(layers) == 6 and len(layers[0].moe.experts) == 4
    assert layers[0].attention.num_heads == 8


def test_lines_gathered_from_a_projected_table_give_the_same_output_as_embeddings():
    from logllm_plugin.featurize import pad_batch, pad_rows

    torch.manual_seed(0)
    model = MoESequenceClassifier(tiny()).eval()
    table = torch.randn(6, 8)
    items = [(np.array([1, 2, 3]), np.array([0, 4, 0])), (np.array([5, 1]), np.array([5, 2]))]
    with torch.no_grad():
        emb, mask, ids = pad_batch(items, table)
        direct = model(emb, mask, ids)
        projected, transition = model.project_table(table)
        rows, previous, mask2, ids2 = pad_rows(items, len(transition) - 1)
        gathered = model(None, mask2, ids2, lines=projected[rows] + transition[previous])
    assert torch.equal(mask, mask2) and torch.equal(ids, ids2)
    assert torch.allclose(direct.logits, gathered.logits, atol=1e-5)
    assert torch.allclose(direct.category_logits, gathered.category_logits, atol=1e-5)
