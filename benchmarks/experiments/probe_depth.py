"""Where does a random backbone keep a degradation? A ridge probe per depth.

Asked: every method is at chance on jpeg with a random ViT-B-32: is the signal gone by its end?
Found: a ridge on token mean and spread gets 0.33 after the patch embedding, -0.07 after block 12.
Changed: nothing in the library: jpeg on random towers is a known limit (pixelate survives: 0.83).

For a synthetic task, fits ``RidgeCV`` on features pooled (mean and std over
tokens) after the patch embedding and after each visual block of a random
open_clip ViT, on the same grouped folds as ``bench_quality``, and prints
within-photo Spearman per depth. If the signal fades with depth, no adapter on
the last layer's tokens can recover it. Usage (from the repository root)::

    python -m benchmarks.experiments.probe_depth --backbone ViT-B-32 --dataset jpeg

Writes ``benchmarks/results/probe-depth-<backbone>-<dataset>.json``.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks._common import (
    RESULTS,
    hidden_states,
    metrics,
    probe_tasks,
    ridge,
    splits,
    write_json,
)


def depth_features(backbone, images) -> list[np.ndarray]:
    """[(N, 2·width) mean ‖ std pooled tokens] after the embedding and each block."""
    per_batch = [
        [torch.cat([h[:, 1:].float().mean(1), h[:, 1:].float().std(1)], dim=1) for h in states]
        for states in hidden_states(backbone, images, 32)
    ]
    return [torch.cat(depth).cpu().numpy() for depth in zip(*per_batch)]


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
    out = RESULTS / f"probe-depth-{args.backbone}-{args.dataset.replace(',', '+')}.json"
    write_json(out, rows)


if __name__ == "__main__":
    main()
