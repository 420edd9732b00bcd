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
    gated = model(emb, mask, ids, dense=False)
    assert dense.aux_loss.item() == 0.0 and gated.aux_loss.item() > 0.0
    assert dense.logits.shape == (2,) and dense.category_logits.shape == (2, 2)


def test_original_paper_size_head_builds():
    from logllm_plugin.config import ModelConfig

    o = ModelConfig.original()
    config = tiny(hidden_size=o.hidden_size, num_layers=o.num_layers, num_heads=o.num_heads,
                  num_experts=o.num_experts, expert_ffn_size=o.expert_ffn_size, input_size=384)
    model = MoESequenceClassifier(config)
    layers = [m for m in model.layers]
    assert len(layers) == 6 and len(layers[0].moe.experts) == 4
    assert layers[0].attention.num_heads == 8
