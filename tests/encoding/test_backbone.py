"""Backbones: token extraction, local checkpoints, offline failures."""

import copy
import json
import time

import open_clip
import pytest
import torch

from skrank._encoding.backbone import Backbone, WeightsUnavailableError, _Weights, load_backbone


@pytest.fixture(scope="module")
def tiny():
    return load_backbone("skrank-tiny", None)


def test_tiny_vit_tokens_are_projected_patch_tokens(tiny):
    x = torch.randn(3, 3, *tiny.image_size)
    tokens = tiny.image_tokens(x)
    grid = (tiny.image_size[0] // 8) * (tiny.image_size[1] // 8)
    assert tokens.shape == (3, grid, tiny.model.visual.proj.shape[1])  # CLS dropped, projected
    # The CLIP image embedding is the projected, ln_post-ed CLS: check the same path by hand.
    visual = tiny.model.visual
    with torch.no_grad():
        h = visual.ln_post(visual.transformer(visual._embeds(x)))
        assert torch.allclose(h[:, 0] @ visual.proj, tiny.image_embeddings(x), atol=1e-5)
        assert torch.allclose(h[:, 1:] @ visual.proj, tokens, atol=1e-5)


def test_text_tokens_mask_padding_after_eot(tiny):
    tokens, valid = tiny.text_tokens(["Sort the images by brightness.", "age"])
    assert tokens.shape[:2] == valid.shape == (2, tiny.context_length)
    n_needed = [tiny.n_text_tokens("Sort the images by brightness."), tiny.n_text_tokens("age")]
    assert valid.sum(dim=1).tolist() == n_needed  # start, words, end; no padding
    assert valid[:, 0].all()


def test_the_text_mask_ends_at_the_tokenizers_own_end_id(tiny, monkeypatch):
    """An open_clip tokenizer with an added special token (id above the end-of-text
    id): CLIP's argmax rule would cut the instruction at that word."""
    from open_clip.tokenizer import SimpleTokenizer

    from skrank._encoding import backbone as bb_module

    tokenizer = SimpleTokenizer(
        context_length=tiny.context_length, additional_special_tokens=["<x>"]
    )
    ids = tokenizer(["Rank the <x> images by brightness."])
    end = int((ids[0] == tokenizer.eot_token_id).nonzero()[0])
    assert int(ids[0].argmax()) < end  # argmax finds the added token first
    expected = [[True] * (end + 1) + [False] * (ids.shape[1] - end - 1)]
    assert bb_module.text_mask(ids, bb_module.end_of_text_id(tokenizer)).tolist() == expected
    # Backbone.text_tokens takes its mask from its own tokenizer's end id.
    seen = []
    monkeypatch.setattr(bb_module, "text_mask", lambda i, e: seen.append(e) or torch.ones_like(i))
    tiny.text_tokens(["age"])
    assert seen == [tiny.tokenizer.eot_token_id]


def test_the_text_mask_for_a_t5_style_vocabulary():
    """SigLIP-like ids: end-of-text is 1 and padding repeats it; no start marker."""
    from skrank._encoding.backbone import end_of_text_id, text_mask

    class HFLike:  # the attribute layout of open_clip.tokenizer.HFTokenizer
        class tokenizer:  # noqa: N801
            eos_token_id = 1

    ids = torch.tensor([[812, 37, 5291, 1, 1, 1], [90, 4, 4, 4, 4, 4], [7, 1, 1, 1, 1, 1]])
    end = end_of_text_id(HFLike())
    assert end == 1
    assert text_mask(ids, end).int().tolist() == [
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1],  # truncated without an end id: every position is text
        [1, 1, 0, 0, 0, 0],
    ]
    # CLIP's tokenizer: its end id is the largest, so both rules agree there.
    clip = torch.tensor([[49406, 320, 49407, 0, 0]])
    assert text_mask(clip, 49407).tolist() == text_mask(clip, None).tolist()


def test_tiny_is_seeded_and_identical_when_rebuilt(tiny):
    from skrank._encoding import backbone as bb_module

    bb_module._LOADED.clear()
    again = load_backbone("skrank-tiny", None)
    assert again is not tiny
    for a, b in zip(tiny.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_backbone_is_frozen(tiny):
    assert not any(p.requires_grad for p in tiny.model.parameters())
    assert not tiny.model.training


def test_timm_convnext_tokens(tmp_path):
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {
            "timm_model_name": "convnext_atto",
            "timm_model_pretrained": False,
            "timm_pool": "",
            "timm_proj": "linear",
            "image_size": 64,
        },
        "text_cfg": {
            "context_length": 16,
            "vocab_size": 49408,
            "width": 32,
            "heads": 2,
            "layers": 1,
        },
    }
    (tmp_path / "test-convnext-atto.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(tmp_path)
    with pytest.warns(UserWarning, match="random"):
        bb = load_backbone("test-convnext-atto", None)
    assert bb.is_timm and bb.info["family"] == "timm"
    x = torch.randn(2, 3, 64, 64)
    tokens = bb.image_tokens(x)
    trunk = bb.model.visual.trunk
    with torch.no_grad():
        fmap = trunk.forward_features(x)  # (N, C, H, W)
        normed = trunk.head.norm(fmap)  # the trunk's pretrained head norm, as the reference
    assert tokens.shape == (2, fmap.shape[2] * fmap.shape[3], fmap.shape[1])
    assert torch.allclose(tokens, normed.flatten(2).transpose(1, 2), atol=1e-5)
    assert not torch.allclose(tokens, fmap.flatten(2).transpose(1, 2), atol=1e-3)
    assert bb.info["tokens"] == "head_norm"
    # A ConvNeXt adapter fitted on the raw maps (before the head norm) is refused.
    from skrank._encoding.backbone import backbone_mismatch
    from skrank._encoding.diskstore import spec_digest

    old = {k: v for k, v in bb.info.items() if k != "tokens"}
    assert any(
        d.startswith("tokens: 'raw' != 'head_norm'") for d in backbone_mismatch(old, bb.info)
    )
    assert backbone_mismatch(bb.info, bb.info) == []
    assert spec_digest(old) != spec_digest(bb.info)  # their token caches are apart


def test_checkpoint_file_loads_through_pretrained_path(tiny, tmp_path):
    model = copy.deepcopy(tiny.model)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    path = tmp_path / "tuned.pt"
    torch.save(model.state_dict(), path)
    loaded = load_backbone("skrank-tiny", str(path))
    expected = Backbone(model, "skrank-tiny", None, _Weights("file", None, "x"), "cpu")
    x = torch.randn(2, 3, *tiny.image_size)
    assert torch.equal(loaded.image_tokens(x), expected.image_tokens(x))
    assert not torch.allclose(loaded.image_tokens(x), tiny.image_tokens(x))
    assert loaded.info["weights_identity"].startswith("file:")


def test_missing_weights_fail_fast_with_a_useful_message():
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as err:
        load_backbone("ViT-B-32", "openai")
    assert time.perf_counter() - t0 < 5
    msg = str(err.value)
    assert "ViT-B-32" in msg and "openai" in msg and "local checkpoint" in msg


def test_unknown_names_and_tags():
    with pytest.raises(ValueError, match="not an open_clip model"):
        load_backbone("ViT-Z-99", None)
    with pytest.raises(ValueError, match="known tags"):
        load_backbone("ViT-B-32", "no-such-tag")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        load_backbone("ViT-B-32", "/no/such/file.pt")
