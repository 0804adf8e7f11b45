"""Adapter parameter counts for the paper's and the default backbones (random init),
for each preset's adapter (skrank.presets: "paper" with pretrained weights, the
default regime of users; "small-data" with random towers).

Run: python benchmarks/param_counts.py   (writes benchmarks/results/param_counts.json)
"""

import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from skrank.adapter import AdapterConfig, RankingAdapter  # noqa: E402
from skrank.backbone import load_backbone  # noqa: E402
from skrank.presets import PRESETS  # noqa: E402

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


def main():
    rows = []
    for name in BACKBONES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bb = load_backbone(name, None)
        for preset in PRESETS.values():
            rows.append(_row(name, bb, preset))
        del bb
    out = Path(__file__).parent / "results" / "param_counts.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
