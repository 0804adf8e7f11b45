"""Adapter parameter counts for the paper's and the default backbones (random init).

Run: python benchmarks/param_counts.py   (writes benchmarks/results/param_counts.json)
"""

import json
import os
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from skrank.adapter import AdapterConfig, RankingAdapter  # noqa: E402
from skrank.backbone import load_backbone  # noqa: E402

BACKBONES = ["skrank-tiny", "ViT-B-32", "ViT-B-16", "convnext_large_d_320"]


def count(module):
    return sum(p.numel() for p in module.parameters())


def main():
    rows = []
    for name in BACKBONES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bb = load_backbone(name, None)
        cfg = AdapterConfig(image_dim=bb.image_dim, text_dim=bb.text_dim, d_model=bb.embed_dim)
        adapter = RankingAdapter(cfg)
        row = {
            "backbone": name,
            "image_tokens": f"{bb.n_image_tokens} x {bb.image_dim}",
            "text_width": bb.text_dim,
            "d_model": cfg.d_model,
            "adapter_params": count(adapter),
            "pair_branch_params": count(adapter.relation) + count(adapter.pair_head),
            "backbone_params_frozen": count(bb.model),
        }
        rows.append(row)
        print(
            f"{name:22s} tokens {row['image_tokens']:>11s}  d={cfg.d_model:4d}  "
            f"adapter {row['adapter_params'] / 1e6:6.2f} M  (pair branch "
            f"{row['pair_branch_params'] / 1e6:5.2f} M)  frozen backbone "
            f"{row['backbone_params_frozen'] / 1e6:7.1f} M"
        )
        del bb
    out = Path(__file__).parent / "results" / "param_counts.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
