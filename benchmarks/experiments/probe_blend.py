"""Would blending the adapter with a linear probe help? Test-set scores of fixed blends.

Asked: what would a fixed blend of the adapter and the token ridge gain (an oracle, on test photos)?
Found: the adapter alone was best on 5 of 8 cells, m = 0.25 on 3 (jpeg 0.53 -> 0.63, 200 images).
Changed: probe="ridge" chooses the weight per task on held-out groups; off by default.

For each synthetic kind, on the folds of ``learning_curves.py`` (split by photo) at
one training size: CLIPRanker without a probe (``probe="none"``: the adapter alone),
``RidgeCV`` on the frozen tokens' mean and spread (the probe ``probe="ridge"``
blends in) and on the pooled CLIP embedding, and the blends
``(1 - m) * adapter + m * ridge-tokens`` for m in ``skrank._model.probe.WEIGHTS``,
scored on the test photos (within-photo SRCC). An oracle analysis: it shows what
the best fixed weight would give, not what a fit that has to choose it gets
(``learning_curves.py`` measures that). Also printed: the adapter's SRCC on its
own training images. Usage (from the repository root)::

    python -m benchmarks.experiments.probe_blend --kinds pixelate jpeg --n-train 200 --fold-ids 0

Writes ``benchmarks/results/probe-blend-<backbone>.json`` (predictions included,
so other blends can be scored from it).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks._common import (
    RESULTS,
    SYNTHETIC,
    embeddings,
    frozen_tokens,
    ridge,
    write_json,
)
from benchmarks.learning_curves import fold_rows, task_for


def score_blends(row: dict) -> dict:
    """Within-photo SRCC of the parts and of each blend, from a result row."""
    from skrank._model.probe import WEIGHTS
    from skrank.metrics import spearman_score

    y, groups = np.asarray(row["y"]), np.asarray(row["groups"])
    adapter, probe = np.asarray(row["adapter"]), np.asarray(row["ridge_tokens"])

    def within(pred):
        return float(spearman_score(y, pred, groups=groups))

    return {
        "ridge-pooled": within(np.asarray(row["ridge_pooled"])),
        "ridge-tokens": within(probe),
        **{f"m={m}": within((1 - m) * adapter + m * probe) for m in WEIGHTS},
        "adapter on its training images": float(
            spearman_score(np.asarray(row["y_train"]), np.asarray(row["adapter_train"]))
        ),
    }


def main(argv=None):
    from skrank import CLIPRanker
    from skrank._encoding.backbone import load_backbone

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="skrank-tiny")
    p.add_argument("--kinds", nargs="*", default=list(SYNTHETIC))
    p.add_argument("--n-train", type=int, default=200)
    p.add_argument("--fold-ids", nargs="*", type=int, default=[0, 1])
    p.add_argument("--tag", help="result file name part (default: the backbone)")
    args = p.parse_args(argv)
    backbone = load_backbone(args.backbone, None, "cpu")
    out = RESULTS / f"probe-blend-{args.tag or args.backbone}.json"
    rows = []
    for kind in args.kinds:
        task = task_for(kind, backbone.image_size[0], [args.n_train], 2, 40)
        images, y, groups = task.images, task.target, np.asarray(task.groups)
        tokens = frozen_tokens(backbone, images)
        stats = np.concatenate([tokens.mean(1).numpy(), tokens.std(1).numpy()], axis=1)
        pooled = embeddings(backbone, images)
        for k, train, test in fold_rows(task, 2, [args.n_train], 40):
            if k not in args.fold_ids:
                continue
            tr = train[args.n_train]
            ranker = CLIPRanker(
                task.instruction,
                backbone=args.backbone,
                pretrained=None,
                device="cpu",
                random_state=k,
                probe="none",
            ).fit([images[i] for i in tr], y[tr])
            row = {
                "kind": kind,
                "fold": k,
                "n_train": len(tr),
                "y": y[test].tolist(),
                "groups": groups[test].tolist(),
                "adapter": ranker.predict([images[i] for i in test]).tolist(),
                "ridge_tokens": ridge(stats[tr], y[tr], stats[test]).tolist(),
                "ridge_pooled": ridge(pooled[tr], y[tr], pooled[test]).tolist(),
                "y_train": y[tr].tolist(),
                "adapter_train": ranker.predict([images[i] for i in tr]).tolist(),
            }
            row["scores"] = score_blends(row)
            rows.append(row)
            shown = "  ".join(f"{name} {v:.3f}" for name, v in row["scores"].items())
            print(f"{kind} fold {k}: {shown}", flush=True)
            write_json(out, rows, indent=None)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
