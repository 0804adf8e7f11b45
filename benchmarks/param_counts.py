"""Adapter parameter counts for the paper's and the default backbones (random init),
for each preset's adapter (skrank._estimator.presets: "paper" with pretrained weights, the
default regime of users; "small-data" with random towers).

Run from the repository root: python -m benchmarks.param_counts
(writes benchmarks/results/param_counts.json)
"""

import argparse
import warnings

from benchmarks._common import RESULTS, write_json
from skrank._encoding.backbone import load_backbone
from skrank._estimator.presets import PRESETS
from skrank._model.adapter import AdapterConfig, RankingAdapter

BACKBONES = ["skrank-tiny", "ViT-B-32", "ViT-B-16", "convnext_large_d_320"]


def count(module):
    return sum(p.numel() for p in module.parameters())


def _row(name: str, bb, preset) -> dict:
    """The counts of ``preset``'s adapter on backbone ``bb`` (printed as one line)."""
    cfg = AdapterConfig(
        image_dim=bb.image_dim,
        text_dim=bb.text_dim,
        d_model=bb.embed_dim,
        n_fusion_layers=preset.n_fusion_layers,
        n_post_layers=preset.n_post_layers,
        score_pooling=preset.score_pooling,
    )
    adapter = RankingAdapter(cfg)
    row = {
        "backbone": name,
        "preset": preset.name,
        "image_tokens": f"{bb.n_image_tokens} x {bb.image_dim}",
        "text_width": bb.text_dim,
        "d_model": cfg.d_model,
        "adapter_params": count(adapter),
        "pair_branch_params": count(adapter.relation) + count(adapter.pair_head),
        "backbone_params_frozen": count(bb.model),
    }
    print(
        f"{name:22s} {preset.name:10s} tokens {row['image_tokens']:>11s}  d={cfg.d_model:4d}  "
        f"adapter {row['adapter_params'] / 1e6:6.2f} M  (pair branch "
        f"{row['pair_branch_params'] / 1e6:5.2f} M)  frozen backbone "
        f"{row['backbone_params_frozen'] / 1e6:7.1f} M"
    )
    return row


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    rows = []
    for name in BACKBONES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bb = load_backbone(name, None)
        for preset in PRESETS.values():
            rows.append(_row(name, bb, preset))
        del bb
    write_json(RESULTS / "param_counts.json", rows)


if __name__ == "__main__":
    main()
