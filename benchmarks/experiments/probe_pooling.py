"""Does the score head's pooling decide what it can learn? Probes on the adapter's input.

Asked: CLIPRanker trailed ridge on pixelate (random ViT-B-32): does its mean-pooled head limit it?
Found: ridge on token mean 0.32, on their std 0.64; the head alone 0.59 pooling mean, 0.82 mean+std.
Changed: the head pools mean and spread (score_pooling="mean_std", the small-data preset's head).

On the frozen tokens the adapter reads (``Backbone.image_tokens``), for a
synthetic task and the same grouped folds as ``bench_quality``:

- ``RidgeCV`` on each feature's mean over tokens, its standard deviation, and both;
- a trained linear input projection plus ``ScoreHead`` with ``pooling="mean"``
  (the paper's head) and ``"mean_std"`` (skrank's), 300 AdamW steps with the
  library's regression loss (``_common.train_head``): the head alone, without the
  transformer blocks.

Within-photo Spearman per fold is printed. Usage (from the repository root)::

    python -m benchmarks.experiments.probe_pooling --backbone ViT-B-32 --dataset pixelate

Writes ``benchmarks/results/probe-pooling-<backbone>-<dataset>.json``.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks._common import (
    RESULTS,
    frozen_tokens,
    metrics,
    probe_tasks,
    ridge,
    splits,
    train_head,
    write_json,
)


def main(argv=None):
    rows = []
    for args, backbone, name, images, y, groups, folds, synthetic in probe_tasks(
        __doc__, "pixelate", argv
    ):
        tokens = frozen_tokens(backbone, images)
        pooled = {
            "ridge on mean": tokens.mean(1),
            "ridge on std": tokens.std(1),
            "ridge on mean+std": torch.cat([tokens.mean(1), tokens.std(1)], dim=1),
        }
        for k, (tr, te) in enumerate(splits(groups, folds, args.folds)):
            scores = {
                probe: ridge(X[tr].numpy(), y[tr], X[te].numpy()) for probe, X in pooled.items()
            }
            for pooling in ("mean", "mean_std"):
                scores[f"head, pooling={pooling}"] = train_head(tokens, y, tr, pooling, k)[te]
            for probe, pred in scores.items():
                m = metrics(y[te], pred, groups[te], synthetic)
                rows.append({"dataset": name, "fold": k, "probe": probe, **m})
                print(f"{name} fold {k} {probe:24s} within-photo SRCC {m['SRCC_within']:.3f}")
    for probe in dict.fromkeys(r["probe"] for r in rows):
        vals = [r["SRCC_within"] for r in rows if r["probe"] == probe]
        print(f"mean over folds  {probe:24s} {np.mean(vals):.3f}")
    out = RESULTS / f"probe-pooling-{args.backbone}-{args.dataset.replace(',', '+')}.json"
    write_json(out, rows)


if __name__ == "__main__":
    main()
