"""How CLIPRanker's training settings decide quality on small data.

A sweep over named settings (learning rate, loss weights, step budget) on the
synthetic tasks, on identical grouped folds, beside the ridge probe, so the
library's defaults are chosen on measurements rather than copied. Usage::

    python benchmarks/sweep_defaults.py --backbone skrank-tiny --dataset jpeg,pixelate \\
        --settings paper paper+auto-lr paper+reg1 default

Writes ``benchmarks/results/sweep-<backbone>-<datasets>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_quality import RESULTS, embeddings, load_task, metrics, ridge, splits  # noqa: E402

# Named CLIPRanker settings; anything not given keeps the library default.
SETTINGS = {
    "default": {},  # lr="auto", reg_weight=1.0
    "paper": {"lr": 5e-5, "reg_weight": 0.2},
    "paper+auto-lr": {"lr": "auto", "reg_weight": 0.2},
    "paper+reg1": {"lr": 5e-5, "reg_weight": 1.0},
    "reg1-lr1e-4": {"lr": 1e-4, "reg_weight": 1.0},
    "reg1-lr3e-4": {"lr": 3e-4, "reg_weight": 1.0},
    "reg1-lr1e-3": {"lr": 1e-3, "reg_weight": 1.0},
    "no-pair": {"rank_weight": 0.0},
}


def main(argv=None):
    from skrank import CLIPRanker
    from skrank.backbone import load_backbone

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="skrank-tiny")
    p.add_argument("--dataset", default="jpeg,pixelate")
    p.add_argument(
        "--settings", nargs="+", default=["paper", "paper+auto-lr", "paper+reg1", "default"]
    )
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--max-epochs", type=int, default=None)
    p.add_argument("--n-sources", type=int, default=None)
    p.add_argument("--tag", default="")
    args = p.parse_args(argv)
    backbone = load_backbone(args.backbone, None, "cpu")
    rows = []
    for name in args.dataset.split(","):
        images, y, groups, instruction, folds, synthetic = load_task(
            name, None, backbone.image_size[0], args.n_sources
        )
        emb = embeddings(backbone, images)
        for k, (tr, te) in enumerate(splits(groups, folds, args.folds)):
            m = metrics(y[te], ridge(emb[tr], y[tr], emb[te]), groups[te], synthetic)
            rows.append({"dataset": name, "fold": k, "setting": "ridge", **m})
            print(f"{name} fold {k} ridge          within {m['SRCC_within']:.3f}", flush=True)
            for s in args.settings:
                t0 = time.perf_counter()
                r = CLIPRanker(
                    instruction,
                    backbone=args.backbone,
                    pretrained=None,
                    device="cpu",
                    random_state=k,
                    max_epochs=args.max_epochs,
                    **SETTINGS[s],
                )  # max_epochs=None (the default budget) unless --max-epochs is given
                r.fit([images[i] for i in tr], y[tr])
                m = metrics(y[te], r.predict([images[i] for i in te]), groups[te], synthetic)
                m["seconds"] = time.perf_counter() - t0
                m["epochs"] = r.n_iter_
                m["lr"] = r.lr_
                rows.append({"dataset": name, "fold": k, "setting": s, **m})
                print(
                    f"{name} fold {k} {s:14s} within {m['SRCC_within']:.3f} "
                    f"pooled {m['SRCC']:.3f} ({m['seconds']:.0f} s, {r.n_iter_} epochs)",
                    flush=True,
                )
    table = ["| dataset | setting | SRCC_within | SRCC |", "|---|---|---|---|"]
    for name in args.dataset.split(","):
        for s in ["ridge", *args.settings]:
            sel = [r for r in rows if r["dataset"] == name and r["setting"] == s]
            w = [r["SRCC_within"] for r in sel]
            pooled = [r["SRCC"] for r in sel]
            table.append(
                f"| {name} | {s} | {np.mean(w):.3f} ± {np.std(w):.3f} | "
                f"{np.mean(pooled):.3f} ± {np.std(pooled):.3f} |"
            )
    print("\n".join(table))
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"sweep-{args.backbone}-{args.dataset.replace(',', '+')}{args.tag}"
    payload = {"settings": {s: SETTINGS[s] for s in args.settings}, "rows": rows}
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
