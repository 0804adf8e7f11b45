"""Prototype: a trained shortcut from the frozen tokens to the score.

Asked: does a trained shortcut from the projected tokens to the score lift the adapter on jpeg?
Found: at 200 images 0.52 against the deep adapter's 0.41 and ridge's 0.51; folds disagree as much.
Changed: nothing; the library is unchanged (a second score head instead: not better either).

The learning curves' weak cells (``results/curves-skrank-tiny.md``: jpeg, and blur
at 50 images) are where a ridge on the frozen tokens' mean and spread beats the
adapter. A fixed ridge added to the score anchored it near the probe
(``docs/model.md``, "The linear probe"); this tries the other order: a linear map
from the mean and spread of the adapter's *projected* input tokens
(``image_in(tokens)``, before fusion) added to the score head's output, starting at
zero and trained with everything else (``--shortcut linear``). ``--shortcut head``
adds instead a second score head (``ScoreHead``: LayerNorm, mean and spread over
tokens, two MLP blocks) on the same projected tokens: the model
``head_alone`` trains alone, here beside the fused path and trained with it.
The library is not changed: the adapter class is patched in this process only.

It fits the patched model (every setting left to ``preset="auto"``) on the learning
curves' own tasks, folds and rows (``learning_curves.task_for``/``fold_rows``, seed =
fold) and prints it beside the ``small-data`` and ``ridge-tokens`` rows already in
``results/curves-<tag>.json`` (run from the repository root)::

    python -m benchmarks.experiments.score_skip --kinds jpeg blur --sizes 50 200 --shortcut head

Rows carry their ``shortcut`` (rows without one are ``linear``'s).
The committed rows (``commit`` before 76e929e, when the deep adapter was the
default) were fitted on the deep adapter and hold the curves' ``deep`` row under
``deep`` (the field was named ``defaults`` then).
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from torch import nn

from benchmarks import learning_curves as lc
from benchmarks._common import RESULTS, git_commit, metrics, write_json


class LinearShortcut(nn.Module):
    """A linear map from the tokens' mean and spread, starting at zero."""

    def __init__(self, d: int):
        super().__init__()
        self.ln = nn.LayerNorm(2 * d, elementwise_affine=False)
        self.linear = nn.Linear(2 * d, 1)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x):  # (B, L, d) → (B,)
        stats = torch.cat([x.mean(dim=1), x.std(dim=1, correction=0)], dim=-1)
        return self.linear(self.ln(stats)).squeeze(-1)


def patch_adapter(shortcut: str = "linear") -> None:
    """Give every RankingAdapter built from now on the shortcut."""
    from skrank._model.adapter import RankingAdapter, ScoreHead

    init, forward = RankingAdapter.__init__, RankingAdapter.forward

    def patched_init(self, cfg):
        init(self, cfg)
        d = cfg.d_model
        self.skip = LinearShortcut(d) if shortcut == "linear" else ScoreHead(d, "mean_std")

    def patched_forward(self, image_tokens, text, text_valid, instruction=0):
        scores, tokens = forward(self, image_tokens, text, text_valid, instruction)
        x = self.image_in(image_tokens)  # (B, L, d): the trainable projection
        return scores + self.skip(x).to(scores.dtype), tokens

    RankingAdapter.__init__ = patched_init
    RankingAdapter.forward = patched_forward


def main(argv=None):
    p = lc.rows_parser(__doc__.split("\n")[0], ["jpeg", "blur"], [50, 200])
    p.add_argument("--tag", default="skrank-tiny", help="the curves file to compare with")
    p.add_argument("--shortcut", choices=["linear", "head"], default="linear")
    args = lc.parse_rows(p, argv)
    from skrank import CLIPRanker
    from skrank._encoding.backbone import load_backbone

    patch_adapter(args.shortcut)
    curves = lc.curve_scores(args.tag, RESULTS)
    backbone = load_backbone(args.backbone, None, "cpu")
    out = RESULTS / f"score-skip-{args.tag}.json"
    rows = json.loads(out.read_text()) if out.exists() else []
    commit = git_commit()
    for kind in args.kinds:
        task = lc.task_for(kind, backbone.image_size[0], args.sizes, args.folds, args.max_test)
        groups, photos = np.asarray(task.groups), np.asarray(task.photos)
        n_sources = int(groups.max() + 1)
        for k, n, tr, test in lc.selected_rows(task, args):
            t0 = time.perf_counter()
            ranker = CLIPRanker(task.instruction, backbone=args.backbone, device="cpu",
                                random_state=k)  # fmt: skip
            ranker.fit([task.images[i] for i in tr], task.target[tr], groups=photos[tr])
            pred = ranker.predict([task.images[i] for i in test])
            m = metrics(task.target[test], pred, groups[test], synthetic=True)
            seen = curves.get((kind, n_sources, n, k), {})
            row = {"kind": kind, "n_sources": n_sources, "n_train": n, "fold": k,
                   "shortcut": args.shortcut, "skip": m["SRCC_within"],
                   lc.REFERENT: seen.get(lc.REFERENT),
                   "ridge-tokens": seen.get("ridge-tokens"),
                   "seconds": time.perf_counter() - t0, "commit": commit}  # fmt: skip
            rows.append(row)
            write_json(out, rows, indent=1)
            print(
                f"{kind:10s} n={n:4d} fold {k}: {args.shortcut} shortcut {row['skip']:.3f} "
                f"{lc.REFERENT} {row[lc.REFERENT]} ridge-tokens {row['ridge-tokens']}",
                flush=True,
            )


if __name__ == "__main__":
    main()
