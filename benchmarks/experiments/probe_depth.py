"""Where does a random backbone keep a degradation? A ridge probe per depth.

For a synthetic task, fits ``RidgeCV`` on features pooled (mean and std over
tokens) after the patch embedding and after each visual block of a random
open_clip ViT, on the same grouped folds as ``bench_quality.py``, and prints
within-photo Spearman per depth. If the signal fades with depth, no adapter on
the last layer's tokens can recover it. Usage::

    python benchmarks/probe_depth.py --backbone ViT-B-32 --dataset jpeg

Writes ``benchmarks/results/probe-depth-<backbone>-<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_quality import RESULTS, hidden_states, load_task, metrics, ridge, splits  # noqa: E402


def depth_features(backbone, images) -> list[np.ndarray]:
    """[(N, 2·width) mean ‖ std pooled tokens] after the embedding and each block."""
    per_batch = [
        [torch.cat([h[:, 1:].float().mean(1), h[:, 1:].float().std(1)], dim=1) for h in states]
        for states in hidden_states(backbone, images, 32)
    ]
    return [torch.cat(depth).cpu().numpy() for depth in zip(*per_batch)]


def probe_tasks(doc: str, default_dataset: str, argv=None):
    """Parse the probe scripts' shared options; yield (args, backbone, name, images, y,
    groups, folds, synthetic) per dataset, on the random backbone's input size."""
    from skrank.backbone import load_backbone

    p = argparse.ArgumentParser(description=doc.split("\n")[0])
    p.add_argument("--backbone", default="ViT-B-32")
    p.add_argument("--dataset", default=default_dataset)
    p.add_argument("--folds", type=int, default=2)
    args = p.parse_args(argv)
    backbone = load_backbone(args.backbone, None, "cpu")
    for name in args.dataset.split(","):
        task = load_task(name, None, backbone.image_size[0], None)
        images, y, groups, _, folds, synthetic = task
        yield args, backbone, name, images, y, groups, folds, synthetic


def main(argv=None):
    rows = []
    for args, backbone, name, images, y, groups, folds, synthetic in probe_tasks(
        __doc__, "jpeg", argv
    ):
        feats = depth_features(backbone, images)
        for depth, X in enumerate(feats):
            scores = [
                metrics(y[te], ridge(X[tr], y[tr], X[te]), groups[te], synthetic)["SRCC_within"]
                for tr, te in splits(groups, folds, args.folds)
            ]
            rows.append({"dataset": name, "depth": depth, "SRCC_within": scores})
            label = "patch embedding" if depth == 0 else f"after block {depth}"
            print(f"{name:10s} {label:16s} within-photo SRCC {np.mean(scores):.3f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"probe-depth-{args.backbone}-{args.dataset.replace(',', '+')}.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
