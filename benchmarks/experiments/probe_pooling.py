"""Does the score head's pooling decide what it can learn? Probes on the adapter's input.

On the frozen tokens the adapter reads (``Backbone.image_tokens``), for a
synthetic task and the same grouped folds as ``bench_quality.py``:

- ``RidgeCV`` on each feature's mean over tokens, its standard deviation, and both;
- a trained linear input projection plus ``ScoreHead`` with ``pooling="mean"``
  (the paper's head) and ``"mean_std"`` (skrank's), 300 AdamW steps with the
  library's regression loss: the head alone, without the transformer blocks.

Within-photo Spearman per fold is printed. Usage::

    python benchmarks/probe_pooling.py --backbone ViT-B-32 --dataset pixelate

Writes ``benchmarks/results/probe-pooling-<backbone>-<dataset>.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_quality import RESULTS, metrics, ridge, splits  # noqa: E402
from probe_depth import probe_tasks  # noqa: E402


def frozen_tokens(backbone, images) -> torch.Tensor:
    """(N, L, C) float32: the tokens CLIPRanker's adapter is trained on."""
    from skrank.cache import MemoryCache

    cache = MemoryCache(backbone, images, augment=False, batch_size=32)
    n = len(images)
    return cache.tokens(np.arange(n), np.zeros(n, bool), "cpu")


def train_head(tokens, y, train, pooling, seed, steps=300, lr=1e-4, d=512):
    from skrank.adapter import ScoreHead
    from skrank.losses import regression_loss

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(tokens.shape[-1], d), ScoreHead(d, pooling))
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    target = torch.as_tensor((y - y[train].mean()) / y[train].std(), dtype=torch.float32)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = torch.as_tensor(rng.choice(train, size=min(64, len(train))))
        loss = regression_loss(model(tokens[idx]), target[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        return model(tokens).numpy()


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
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"probe-pooling-{args.backbone}-{args.dataset.replace(',', '+')}.json"
    out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
