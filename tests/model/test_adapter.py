"""The adapter's maths: exact factorised pair attention, shapes, losses."""

import math

import pytest
import torch

from skrank._model.adapter import AdapterConfig, RankingAdapter, ScoreHead
from skrank._model.losses import pair_targets, ranking_loss, regression_loss


def naive_pair_features(rel, x):
    """The reference computation: one joint softmax over both images' 2L keys, per pair."""
    B, L, d = x.shape
    h, c = rel.n_heads, d // rel.n_heads
    # The reference's: LayerNorm on q, one layer-normed projection for both k and v.
    q = rel.ln_q(rel.q(rel.tokens)).view(-1, h, c).transpose(0, 1)  # (h, R, c)
    k = v = rel.ln_kv(rel.kv(x)).view(B, L, h, c).transpose(1, 2)  # (B, h, L, c)
    out = torch.empty(B, B, d, dtype=x.dtype)
    for i in range(B):
        for j in range(B):
            keys = torch.cat([k[i], k[j]], dim=1)  # (h, 2L, c): materialised per pair
            vals = torch.cat([v[i], v[j]], dim=1)
            p = torch.softmax(q @ keys.transpose(1, 2) / math.sqrt(c), dim=-1)  # (h, R, 2L)
            o_i = p[..., :L] @ vals[:, :L]  # (h, R, c): output restricted to i's keys
            o_j = p[..., L:] @ vals[:, L:]
            diff = (o_i - o_j).mean(dim=1)  # average over relation tokens: (h, c)
            out[i, j] = rel.out(diff.reshape(d))
    return out


SMALL = dict(
    image_dim=24, text_dim=20, d_model=32, n_heads=4, n_prompt_tokens=5, n_relation_tokens=6
)


@pytest.fixture(params=[0, 2])
def adapter(request):
    torch.manual_seed(0)
    config = AdapterConfig(**SMALL, n_post_layers=request.param)
    return RankingAdapter(config).eval()  # no dropout


def test_factorised_pair_attention_equals_joint_softmax(adapter):
    torch.manual_seed(1)
    x = torch.randn(7, 11, 32) * 3  # large logits stress the log-normaliser split
    rel = adapter.relation
    with torch.no_grad():
        u, log_z = rel.stats(x)
        fast = rel.all_pairs(u, log_z)
        naive = naive_pair_features(rel, x)
        explicit = rel.pairs(
            u[:, None].expand(-1, 7, -1, -1, -1).reshape(49, *u.shape[1:]),
            log_z[:, None].expand(-1, 7, -1, -1).reshape(49, *log_z.shape[1:]),
            u[None].expand(7, -1, -1, -1, -1).reshape(49, *u.shape[1:]),
            log_z[None].expand(7, -1, -1, -1).reshape(49, *log_z.shape[1:]),
        )
    assert torch.allclose(fast, naive, atol=1e-5, rtol=0)
    assert torch.allclose(explicit.view(7, 7, -1), naive, atol=1e-5, rtol=0)
    # Antisymmetric in (i, j): f(j, i) = -f(i, j), and zero on the diagonal.
    assert torch.allclose(fast, -fast.transpose(0, 1), atol=1e-6)
    assert fast.diagonal(dim1=0, dim2=1).abs().max() < 1e-6


def test_pair_logits_chunking_is_exact(adapter):
    x = torch.randn(9, 5, 24)
    text, valid = torch.randn(1, 6, 20), torch.ones(1, 6, dtype=torch.bool)
    with torch.no_grad():
        _, fused = adapter(x, text, valid)
        whole = adapter.pair_logits(fused)
        chunked = adapter.pair_logits(fused, max_pairs=10)  # one row at a time
    assert whole.shape == (9, 9)
    assert torch.allclose(whole, chunked, atol=1e-6)


def test_pair_logits_in_one_pass_equal_the_odd_logit_of_every_pair(adapter):
    """(G - G^T) / 2 from one pass of the pair MLP is (g(f) - g(-f)) / 2 per pair, and
    it is exactly antisymmetric with a zero diagonal."""
    x = torch.randn(9, 5, 24)
    text, valid = torch.randn(1, 6, 20), torch.ones(1, 6, dtype=torch.bool)
    with torch.no_grad():
        _, fused = adapter(x, text, valid)
        logits = adapter.pair_logits(fused)
        u, log_z = adapter.relation.stats(fused)
        feats = adapter.relation.all_pairs(u, log_z)  # (9, 9, d)
        head = adapter.pair_head
        two_passes = 0.5 * (head.raw(feats) - head.raw(-feats))
    assert torch.allclose(logits, two_passes, atol=1e-5, rtol=0)
    assert torch.equal(logits, -logits.T)
    assert torch.equal(logits.diagonal(), torch.zeros(9))
    # Explicit pairs (compare) give the same logits as the batch of all pairs.
    with torch.no_grad():
        a, b = torch.arange(9).repeat_interleave(9), torch.arange(9).repeat(9)
        explicit = adapter.compare_logits(fused[a], fused[b]).view(9, 9)
    assert torch.allclose(explicit, logits, atol=1e-5, rtol=0)


def test_cross_attention_projects_a_shared_context_once_and_equals_it_per_image(adapter):
    """A context of batch 1 (the instruction and prompt every image shares) gives what the
    same context repeated per image gives, in the outputs and in the weights' gradients,
    and its keys and values are projected once (1 row of the batch, not B)."""
    torch.manual_seed(2)
    block = next(b for b in adapter.fusion if b.cross)
    x, ctx = torch.randn(6, 5, 32), torch.randn(1, 7, 32)
    valid = torch.tensor([[True] * 5 + [False] * 2])
    rows = []
    hook = block.cross_attn.kv.register_forward_hook(lambda m, i, o: rows.append(i[0].shape[0]))
    shared = block(x, ctx, valid)
    shared.square().sum().backward()
    grad = block.cross_attn.kv.weight.grad.clone()
    block.zero_grad()
    repeated = block(x, ctx.expand(6, -1, -1), valid.expand(6, -1))
    repeated.square().sum().backward()
    hook.remove()
    assert rows == [1, 6]
    assert torch.allclose(shared, repeated, atol=1e-6, rtol=0)
    assert torch.allclose(block.cross_attn.kv.weight.grad, grad, atol=1e-4, rtol=1e-5)


def test_padding_of_the_instruction_is_ignored(adapter):
    x = torch.randn(3, 5, 24)
    text = torch.randn(1, 8, 20)
    valid = torch.tensor([[True] * 4 + [False] * 4])
    garbage = text.clone()
    garbage[:, 4:] = 1e3 * torch.randn(1, 4, 20)
    with torch.no_grad():
        a, _ = adapter(x, text, valid)
        b, _ = adapter(x, garbage, valid)
    assert torch.allclose(a, b, atol=1e-6)


def test_score_is_a_mean_over_tokens_so_token_count_does_not_matter(adapter):
    tokens = torch.randn(2, 4, 32)
    with torch.no_grad():
        once = adapter.score_head(tokens)
        twice = adapter.score_head(torch.cat([tokens, tokens], dim=1))
    assert torch.allclose(once, twice, atol=1e-6)


def test_mean_std_pooling_sees_what_a_mean_cannot():
    # Two images of layer-normalised tokens, each the mirror image of itself, so both
    # pool to mean 0: the paper's mean head must score them alike, ours reads the spread.
    torch.manual_seed(1)
    a, b, c = (torch.nn.functional.layer_norm(torch.randn(32), (32,)) for _ in range(3))
    flat = torch.stack([a, -a, a, -a])  # one direction: spread 1 in every feature
    busy = torch.stack([b, -b, c, -c])  # two directions: a different spread
    images = torch.stack([flat, busy])  # (2, 4, 32)
    with torch.no_grad():
        mean_only = ScoreHead(32, "mean")(images)
        mean_std = ScoreHead(32, "mean_std")(images)
    assert torch.allclose(mean_only[0], mean_only[1], atol=1e-5)
    assert not torch.allclose(mean_std[0], mean_std[1], atol=1e-3)
    with pytest.raises(ValueError, match="pooling"):
        ScoreHead(32, "max")


def test_no_prompt_tokens_is_allowed():
    m = RankingAdapter(AdapterConfig(8, 8, d_model=8, n_heads=2, n_prompt_tokens=0))
    s, fused = m(torch.randn(2, 3, 8), torch.randn(1, 4, 8), torch.ones(1, 4, dtype=torch.bool))
    assert s.shape == (2,) and fused.shape == (2, 3, 8)


def test_d_model_must_divide_heads():
    with pytest.raises(ValueError, match="divisible"):
        RankingAdapter(AdapterConfig(8, 8, d_model=10, n_heads=4))


def test_pair_targets_and_losses():
    y = torch.tensor([0.0, 1.0, 1.0])
    t = pair_targets(y)
    assert t.tolist() == [[0.5, 0.0, 0.0], [1.0, 0.5, 0.5], [1.0, 0.5, 0.5]]
    mask = ~torch.eye(3, dtype=torch.bool)
    logits = torch.zeros(3, 3)
    assert math.isclose(ranking_loss(logits, y, mask).item(), math.log(2), rel_tol=1e-6)
    assert ranking_loss(logits, y, torch.zeros(3, 3, dtype=torch.bool)).item() == 0.0
    pred = torch.tensor([0.0, 1.0, 3.0])
    target = torch.tensor([0.0, 1.0, 1.0])
    # SmoothL1 mean = (0 + 0 + (2 - 0.5)) / 3 = 0.5 → log(1.5)
    assert math.isclose(regression_loss(pred, target).item(), math.log(1.5), rel_tol=1e-6)


def test_weighted_regression_loss_equals_repeated_rows():
    pred, y = torch.tensor([0.1, 0.5, -0.3]), torch.tensor([0.0, 1.0, -1.0])
    w = torch.tensor([2.0, 1.0, 3.0])
    counts = w.long()
    repeated = regression_loss(pred.repeat_interleave(counts), y.repeat_interleave(counts))
    assert regression_loss(pred, y, w).item() == pytest.approx(repeated.item(), rel=1e-6)
    mask = ~torch.eye(3, dtype=torch.bool)
    logits = torch.randn(3, 3)
    assert ranking_loss(logits, y, mask, torch.ones(3)).item() == pytest.approx(
        ranking_loss(logits, y, mask).item(), rel=1e-6
    )
    zero_last = ranking_loss(logits, y, mask, torch.tensor([1.0, 1.0, 0.0]))
    assert zero_last.item() == pytest.approx(
        ranking_loss(logits[:2, :2], y[:2], mask[:2, :2]).item(), rel=1e-6
    )


def test_the_pair_probability_is_coherent():
    """P(a above b) + P(b above a) = 1 and P(a above a) = 0.5, on a trained-like adapter."""
    torch.manual_seed(3)
    adapter = RankingAdapter(AdapterConfig(**SMALL)).eval()
    for p in adapter.parameters():  # far from initialisation: large, asymmetric weights
        p.data.add_(torch.randn_like(p) * 0.5)
    x = torch.randn(6, 5, 24) * 2
    text, valid = torch.randn(1, 6, 20), torch.ones(1, 6, dtype=torch.bool)
    with torch.no_grad():
        _, fused = adapter(x, text, valid)
        p = torch.sigmoid(adapter.pair_logits(fused))
        ab = torch.sigmoid(adapter.compare_logits(fused[:3], fused[3:]))
        ba = torch.sigmoid(adapter.compare_logits(fused[3:], fused[:3]))
        aa = torch.sigmoid(adapter.compare_logits(fused, fused))
    torch.testing.assert_close(p + p.T, torch.ones(6, 6), atol=1e-6, rtol=0)
    torch.testing.assert_close(p.diagonal(), torch.full((6,), 0.5), atol=1e-6, rtol=0)
    torch.testing.assert_close(ab + ba, torch.ones(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(aa, torch.full((6,), 0.5), atol=1e-6, rtol=0)
    assert (p - 0.5).abs().max() > 0.05  # not coherent by being constant
    head = adapter.pair_head
    with torch.no_grad():
        features = adapter.relation.all_pairs(*adapter.relation.stats(fused))
        q = torch.sigmoid(head.mlp(head.ln(features)).squeeze(-1))
    assert (q + q.T - 1).abs().max() > 1e-3  # the head's MLP alone (skrank 0.1's logit) is not


def test_the_reference_architecture_by_default():
    from skrank._model.adapter import Block, PostLNBlock

    adapter = RankingAdapter(AdapterConfig(**SMALL, n_fusion_layers=2, n_post_layers=3))
    assert all(isinstance(b, Block) for b in adapter.fusion)
    # Two blocks per fusion layer, each with one attention and its own MLP.
    kinds = [(hasattr(b, "self_attn"), hasattr(b, "cross_attn")) for b in adapter.fusion]
    assert kinds == [(True, False), (False, True)] * 2
    assert [b.cross for b in adapter.fusion] == [False, True] * 2
    assert len(adapter.post) == 3 and all(isinstance(b, PostLNBlock) for b in adapter.post)
    assert adapter.post[0].fc.out_features == 32  # feed-forward width d, not 4d
    # LayerNorm in the relation attention, one projection for its keys and values.
    rel = adapter.relation
    assert isinstance(rel.ln_q, torch.nn.LayerNorm) and isinstance(rel.ln_kv, torch.nn.LayerNorm)
    assert rel.kv.out_features == 32


def test_dropout_acts_only_in_training():
    adapter = RankingAdapter(AdapterConfig(**SMALL))
    x = torch.randn(4, 5, 24)
    text, valid = torch.randn(1, 6, 20), torch.ones(1, 6, dtype=torch.bool)
    with torch.no_grad():
        adapter.train()
        a, b = adapter(x, text, valid)[0], adapter(x, text, valid)[0]
        assert not torch.allclose(a, b)
        adapter.eval()
        torch.testing.assert_close(adapter(x, text, valid)[0], adapter(x, text, valid)[0])


@pytest.mark.parametrize("name", ["score_pooling", "probe", "image_positions"])
def test_unknown_options_are_refused(name):
    with pytest.raises(ValueError, match=name):
        AdapterConfig(**SMALL, **{name: "other"})


@pytest.mark.parametrize("name", ["fusion", "post_layers", "relation_norm", "pair_logit"])
def test_skrank_01s_architecture_options_are_gone(name):
    """The adapter is always the reference's: no option selects skrank 0.1's layers
    (what older files hold is the loader's business: test_architecture_params)."""
    with pytest.raises(TypeError, match=name):
        AdapterConfig(**SMALL, **{name: "anything"})


@pytest.mark.parametrize("autocast", [False, True])
def test_the_mlp_keeps_its_hidden_layer_once_and_gets_the_same_gradients(autocast, monkeypatch):
    """The MLP's backward keeps gelu's input alone and computes its output again (a
    hidden-wide copy less a block): the very gradients of proj(gelu(fc(x)))."""
    import torch.nn.functional as F

    from skrank._model import adapter as adapters

    torch.manual_seed(0)
    mlp = adapters.MLP(16, 4)
    packed = []
    pack = adapters._AsGelu.pack

    def recording(self, t):
        packed.append(pack(self, t))
        return packed[-1]

    monkeypatch.setattr(adapters._AsGelu, "pack", recording)

    def grads(forward):
        x = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(1), requires_grad=True)
        mlp.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = forward(x)
        (out.float() * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        return [t.grad.clone() for t in (x, *mlp.parameters())]

    plain = grads(lambda v: mlp.proj(F.gelu(mlp.fc(v))))
    assert not packed
    recomputed = grads(mlp)
    kept = [p for p in packed if isinstance(p, adapters._GeluOf)]
    assert len(kept) == 1 and kept[0].h.shape == (3, 7, 64)  # gelu's output not kept
    assert not any(isinstance(p, torch.Tensor) and p.shape[-1] == 64 for p in packed)
    for a, b in zip(plain, recomputed):
        assert torch.equal(a, b)


def test_dropout_keeps_a_boolean_mask_and_drops_as_f_dropout_does():
    from skrank._model.adapter import _dropout, dropout_generator

    x = torch.randn(200, 50, requires_grad=True)
    saved = []
    with dropout_generator(torch.Generator().manual_seed(0)):
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
            y = _dropout(x, 0.25)
    keep = y != 0
    assert abs(keep.float().mean().item() - 0.75) < 0.01
    torch.testing.assert_close(y[keep], x[keep] / 0.75, rtol=0, atol=0)
    assert [t.dtype for t in saved] == [torch.bool]
    y.sum().backward()
    torch.testing.assert_close(x.grad, keep.float() / 0.75, rtol=0, atol=0)
