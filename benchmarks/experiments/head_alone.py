"""Where does the adapter lose to the linear probe on little data? The head alone.

Asked: on little data, is it the score head that trails the token ridge, or the depth before it?
Found: skrank-tiny, 50 / 200 images: the head alone 0.80 / 0.88, the deep adapter 0.68 / 0.79.
Changed: the small-data adapter went shallow: 1 fusion layer, no post layers (docs/model.md).

The learning curves' weak cells (``results/curves-ViT-B-32.md`` at 50 images,
jpeg on ``skrank-tiny``) are where a ridge on the frozen tokens' mean and spread
beats CLIPRanker. This trains, on the same tasks, folds and training rows
(``learning_curves.task_for``/``selected_rows``), the score head without the rest
of the adapter: a trained linear projection of the frozen tokens, then
``ScoreHead`` (LayerNorm, mean and spread over tokens, two MLP blocks), 300 AdamW
steps at a constant learning rate on the library's regression loss
(``_common.train_head``): no fusion with the instruction, no post-fusion
layers, no pair branch, no schedule. If the head alone reaches the probe where
the adapter does not, what costs on little data is the depth in front of the
head (or its training), not the head or the tokens.

Each row is printed beside the ``small-data`` and ``ridge-tokens`` rows already in
``results/curves-<tag>.json`` (run from the repository root)::

    python -m benchmarks.experiments.head_alone --backbone ViT-B-32 --tag ViT-B-32 \\
        --kinds pixelate blur count --sizes 50 200 --only-sizes 50 --fold-ids 0

Writes ``benchmarks/results/head-alone-<tag>.json`` (rows already there for the
same cell and learning rate are replaced). The committed rows (all run before the
shallow adapter, commit 76e929e) hold the curves' ``deep`` row under ``deep``
(the field was named ``defaults`` then: the deep adapter was the default).
"""

from __future__ import annotations

import json
import time

import numpy as np

from benchmarks import learning_curves as lc
from benchmarks._common import (
    RESULTS,
    frozen_tokens,
    git_commit,
    metrics,
    train_head,
    write_json,
)


def main(argv=None):
    p = lc.rows_parser(__doc__.split("\n")[0], ["jpeg", "blur"], [50, 200])
    p.add_argument("--tag", default="skrank-tiny", help="the curves file to compare with")
    p.add_argument("--lrs", nargs="*", type=float, default=[1e-4, 3e-4, 1e-3])
    p.add_argument("--steps", type=int, default=300)
    args = lc.parse_rows(p, argv)
    from skrank._encoding.backbone import load_backbone

    backbone = load_backbone(args.backbone, None, "cpu")
    curves = lc.curve_scores(args.tag, RESULTS)
    out = RESULTS / f"head-alone-{args.tag}.json"
    rows = json.loads(out.read_text()) if out.exists() else []
    commit = git_commit()
    for kind in args.kinds:
        task = lc.task_for(kind, backbone.image_size[0], args.sizes, args.folds, args.max_test)
        groups, y = np.asarray(task.groups), np.asarray(task.target, dtype=float)
        n_sources = int(groups.max() + 1)
        all_tokens = frozen_tokens(backbone, task.images)  # once per task, as learning_curves
        for k, n, tr, test in lc.selected_rows(task, args):
            rows_used = np.concatenate([tr, test])
            tokens = all_tokens[rows_used]
            train = np.arange(len(tr))
            seen = curves.get((kind, n_sources, n, k), {})
            for lr in args.lrs:
                t0 = time.perf_counter()
                # The adapter's default width: the backbone's embedding width.
                pred = train_head(tokens, y[rows_used], train, "mean_std", k, args.steps, lr,
                                  int(backbone.embed_dim))[len(tr):]  # fmt: skip
                m = metrics(y[test], pred, groups[test], synthetic=True)
                row = {"kind": kind, "n_sources": n_sources, "n_train": n, "fold": k,
                       "lr": lr, "steps": args.steps, "head_alone": m["SRCC_within"],
                       lc.REFERENT: seen.get(lc.REFERENT),
                       "ridge-tokens": seen.get("ridge-tokens"),
                       "seconds": time.perf_counter() - t0, "commit": commit}  # fmt: skip
                same = ("kind", "n_sources", "n_train", "fold", "lr", "steps")
                rows = [r for r in rows if any(r.get(f) != row[f] for f in same)] + [row]
                write_json(out, rows, indent=1)
                print(
                    f"{kind:10s} n={n:4d} fold {k} lr {lr:g}: head alone "
                    f"{row['head_alone']:.3f}  {lc.REFERENT} {row[lc.REFERENT]}  "
                    f"ridge-tokens {row['ridge-tokens']}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
