"""Quality of CLIPRanker against the alternatives, on identical grouped splits.

Usage (from the repository root)::

    python -m benchmarks.bench_quality --backbone skrank-tiny --dataset blur
    python -m benchmarks.bench_quality --backbone ViT-B-32 --pretrained none --dataset all
    python -m benchmarks.bench_quality --backbone convnext_large_d_320 \\
        --pretrained laion2b_s29b_b131k_ft_soup --dataset koniq10k --root /data/koniq10k

Methods, all on the same frozen backbone and the same folds (grouped by source
photo or person, so nothing crosses train and test):

- ``zero-shot``: cosine similarity to a positive minus a negative prompt
  (CLIP-IQA style), mapped to the target's units by a line fitted on train.
- ``ridge``: ``RidgeCV`` on pooled CLIP image embeddings (a linear probe).
- ``fine-tuned``: the tower's last block (ViT) or last stage (ConvNeXt), unfrozen,
  and a linear head trained with MSE (the paper's "CLIP (fine-tuned)" row); the
  frozen part's output is computed once, so only the tail runs per step.
- ``CLIPRanker`` with nothing set (``preset="auto"``: the ``paper`` preset on
  pretrained weights, ``small-data`` on random towers), ``paper`` (the reference's
  depth with the paper's ``lr=5e-5, reg_weight=0.2``), and ablations ``no-pair``
  (``rank_weight=0``), ``no-prompt`` (``n_prompt_tokens=0``) and ``no-reg``
  (``reg_weight=0``: the score head then gets no training signal, so this row
  shows what the regression loss is for).
- The paper-fidelity rows (``_common.FIDELITY``, only when named in ``--methods``):
  ``reference`` (the reference's architecture with the paper's mean head,
  ``lr=5e-5``, ``reg_weight=0.2`` and 30 epochs) and ``ref+<departure>`` for each of
  skrank's training departures on its own::

    python -m benchmarks.bench_quality --backbone skrank-tiny --folds 2 --tag fidelity \\
        --methods ridge CLIPRanker reference ref+mean_std ref+reg_weight=1 ref+lr=auto \\
        "ref+300-step floor"

Metrics: SRCC, KRCC, PLCC, MAE, pairwise accuracy; mean ± std over folds; for
the synthetic tasks pooled over the test set and within each source photo.
Writes ``benchmarks/results/quality-<backbone>-<dataset>.json``, ``.md`` and ``.png``
(``--tag`` names the file otherwise). Each method's rows record the commit that
produced them; ``--merge`` reruns some datasets or methods into an existing file
and keeps the rest, e.g. after a change to the adapter::

    python -m benchmarks.bench_quality --backbone skrank-tiny --dataset all --folds 2 \\
        --methods CLIPRanker no-pair --merge
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import (
    DEEP,
    FIDELITY,
    RESULTS,
    SYNTHETIC,
    embeddings,
    git_commit,
    hidden_states,
    load_task,
    metrics,
    ridge,
    splits,
    write_json,
)

# (positive, negative) prompts for the zero-shot baseline: "more" of the target first.
PROMPTS = {
    "blur": ("a blurry photo.", "a sharp photo."),
    "noise": ("a noisy, grainy photo.", "a clean photo."),
    "jpeg": ("a heavily compressed photo with JPEG artifacts.", "a high quality photo."),
    "brightness": ("a bright photo.", "a dark photo."),
    "contrast": ("a high contrast photo.", "a low contrast photo."),
    "pixelate": ("a pixelated photo.", "a detailed photo."),
    "count": ("many circles drawn on a photo.", "one circle drawn on a photo."),
    "koniq10k": ("a good photo.", "a bad photo."),
    "ava": ("a beautiful photo.", "an ugly photo."),
    "adience": ("a photo of an old person.", "a photo of a baby."),
    "utkface": ("a photo of an old person.", "a photo of a baby."),
    "hci": ("a recent color photo.", "an old color photo."),
}
ABLATIONS = {
    "CLIPRanker": {},
    "paper": {**DEEP, "lr": 5e-5, "reg_weight": 0.2},
    "no-pair": {"rank_weight": 0.0},
    "no-prompt": {"n_prompt_tokens": 0},
    "no-reg": {"reg_weight": 0.0},
}


# --------------------------------------------------------------------------- baselines


def zero_shot(backbone, name, emb_train, y_train, emb_test):
    """CLIPZeroShotRanker's score of the task's prompt pair, on embeddings computed
    once, mapped to the target's units by a line fitted on the training fold."""
    from skrank import CLIPZeroShotRanker

    ranker = CLIPZeroShotRanker(
        prompts=PROMPTS[name],
        backbone=backbone.name,
        pretrained=backbone.pretrained,
        device=str(backbone.device),
    )
    direction = ranker.fit().direction_

    def score(e):
        return (e / np.linalg.norm(e, axis=1, keepdims=True)) @ direction

    s_train = score(emb_train)
    a, b = np.polyfit(s_train, y_train, 1)  # map similarity to the target's units
    return a * score(emb_test) + b


def _before_last_block(backbone, images):
    """Hidden states entering the last visual block (frozen, computed once)."""
    return torch.cat([states[-2].cpu() for states in hidden_states(backbone, images)])


def _before_last_stage(backbone, images, batch_size=64):
    """A timm trunk's feature maps entering its last stage (frozen, computed once)."""
    from skrank._encoding.images import Preprocessor, iter_pixel_batches

    trunk = backbone.model.visual.trunk
    pre = Preprocessor.from_info(backbone.info)
    out = []
    with torch.no_grad():
        for _, px, _ in iter_pixel_batches(images, pre, batch_size):
            x = trunk.stem(px.to(backbone.device))
            for stage in trunk.stages[:-1]:
                x = stage(x)
            out.append(x.cpu())
    return torch.cat(out)


class _ViTTail(torch.nn.Module):
    """Trainable copies of a ViT's last block, ``ln_post`` and projection: hidden
    states entering the last block → CLIP's pooled embedding (the CLS path)."""

    inputs = staticmethod(_before_last_block)

    def __init__(self, visual):
        import copy

        super().__init__()
        self.block = copy.deepcopy(visual.transformer.resblocks[-1]).requires_grad_(True)
        self.ln_post = copy.deepcopy(visual.ln_post).requires_grad_(True)
        self.proj = torch.nn.Parameter(visual.proj.detach().clone())

    def forward(self, h):
        return self.ln_post(self.block(h))[:, 0] @ self.proj


class _StageTail(torch.nn.Module):
    """Trainable copies of a timm trunk's last stage, its head (pooling, norm) and
    open_clip's projection head: feature maps entering the last stage → the
    tower's embedding, as the tower's own forward runs them."""

    inputs = staticmethod(_before_last_stage)

    def __init__(self, visual):
        import copy

        super().__init__()
        trunk = visual.trunk
        if not hasattr(trunk, "stages"):
            raise NotImplementedError("fine-tuned: a timm trunk without stages (not a ConvNeXt)")
        self.stage = copy.deepcopy(trunk.stages[-1]).requires_grad_(True)
        self.norm_pre = copy.deepcopy(trunk.norm_pre).requires_grad_(True)
        self.trunk_head = copy.deepcopy(trunk.head).requires_grad_(True)
        self.head = copy.deepcopy(visual.head).requires_grad_(True)

    def forward(self, h):
        return self.head(self.trunk_head(self.norm_pre(self.stage(h))))


def trainable_tail(backbone) -> torch.nn.Module:
    """The tower's last block (ViT) or stage (timm ConvNeXt) as a trainable copy;
    its ``inputs(backbone, images)`` are the frozen states that enter it."""
    visual = backbone.model.visual
    return (_StageTail if backbone.is_timm else _ViTTail)(visual)


def fine_tuned(backbone, X_train, y_train, X_test, epochs=30, lr=1e-4, seed=0):
    """The tower's last block (ViT) or stage (ConvNeXt) + linear head, MSE on
    standardised targets; the frozen part runs once."""
    torch.manual_seed(seed)
    tail = trainable_tail(backbone).train()
    head = torch.nn.Linear(backbone.embed_dim, 1)
    opt = torch.optim.AdamW([*tail.parameters(), *head.parameters()], lr=lr, weight_decay=0.01)
    h_train, h_test = tail.inputs(backbone, X_train), tail.inputs(backbone, X_test)
    mu, sd = y_train.mean(), y_train.std()
    yt = torch.as_tensor((y_train - mu) / sd, dtype=torch.float32)
    rng = np.random.default_rng(seed)

    def forward(h):
        return head(tail(h)).squeeze(-1)

    steps = max(300, epochs * int(np.ceil(len(h_train) / 32)))
    for _ in range(steps):
        idx = torch.as_tensor(rng.choice(len(h_train), size=min(32, len(h_train)), replace=False))
        loss = torch.nn.functional.mse_loss(forward(h_train[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    tail.eval()
    with torch.no_grad():
        return forward(h_test).numpy() * sd + mu


# --------------------------------------------------------------------------- main


def run(args, name: str) -> dict:
    from skrank import CLIPRanker
    from skrank._encoding.backbone import load_backbone

    pretrained = None if args.pretrained in (None, "none") else args.pretrained
    backbone = load_backbone(args.backbone, pretrained, args.device)
    size = backbone.image_size[0]
    images, y, groups, instruction, folds, synthetic = load_task(
        name, args.root, size, args.n_sources
    )
    print(
        f"\n{name}: {len(images)} images, {len(np.unique(groups))} groups, "
        f"{instruction!r}, backbone {args.backbone} ({pretrained})"
    )
    emb = embeddings(backbone, images)
    per_fold: dict[str, list] = {}
    methods = ["zero-shot", "ridge", "fine-tuned", *ABLATIONS]
    if args.methods:
        methods = [m for m in [*methods, *FIDELITY] if m in args.methods]
    for k, (tr, te) in enumerate(splits(groups, folds, args.folds)):
        X_tr = [images[i] for i in tr]
        X_te = [images[i] for i in te]
        for method in methods:
            t0 = time.perf_counter()
            if method == "zero-shot":
                pred = zero_shot(backbone, name, emb[tr], y[tr], emb[te])
            elif method == "ridge":
                pred = ridge(emb[tr], y[tr], emb[te])
            elif method == "fine-tuned":
                pred = fine_tuned(backbone, X_tr, y[tr], X_te)
            else:
                r = CLIPRanker(
                    instruction,
                    backbone=args.backbone,
                    pretrained=pretrained,
                    device=args.device,
                    random_state=k,
                    **{**ABLATIONS, **FIDELITY}[method],
                )
                pred = r.fit(X_tr, y[tr]).predict(X_te)
            if pred is None:
                continue
            m = metrics(y[te], pred, groups[te], synthetic)
            m["seconds"] = time.perf_counter() - t0
            per_fold.setdefault(method, []).append(m)
            shown = m.get("SRCC_within", m["SRCC"])
            print(
                f"  fold {k} {method:11s} SRCC {m['SRCC']:.3f}"
                + (f" within {shown:.3f}" if synthetic else "")
                + f"  ({m['seconds']:.0f} s)"
            )
    summary = {
        method: {
            key: [float(np.mean([f[key] for f in folds_])), float(np.std([f[key] for f in folds_]))]
            for key in folds_[0]
        }
        for method, folds_ in per_fold.items()
    }
    return {
        "dataset": name,
        "backbone": args.backbone,
        "pretrained": pretrained,
        "n_images": len(images),
        "instruction": instruction,
        "synthetic": synthetic,
        "folds": len(next(iter(per_fold.values()))),
        "summary": summary,
        "per_fold": per_fold,
        "commits": dict.fromkeys(per_fold, args.commit),
    }


def merge(results: list[dict], new: dict) -> list[dict]:
    """``results`` with ``new``'s methods replacing those of the same dataset."""
    for r in results:
        if r["dataset"] == new["dataset"]:
            for key in ("summary", "per_fold", "commits"):
                r[key] = {**r.get(key, {}), **new[key]}
            r["folds"] = new["folds"]
            return results
    return [*results, new]


def compact(results: list[dict], key: str) -> str:
    """One table: a row per dataset, a column per method, the mean of ``key`` over folds."""
    methods = list(dict.fromkeys(m for r in results for m in r["summary"]))
    lines = [
        "| dataset | " + " | ".join(methods) + " |",
        "|---" * (len(methods) + 1) + "|",
    ]
    for r in results:
        cells = [f"{r['summary'][m][key][0]:.2f}" if m in r["summary"] else "" for m in methods]
        lines.append(f"| {r['dataset']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results: list[dict]) -> str:
    lines = []
    keys = ["SRCC_within", "SRCC"] if results[0]["synthetic"] else ["SRCC", "PLCC"]
    for key in keys:
        lines += [f"**{key}** (mean over folds)", "", compact(results, key), ""]
    for res in results:
        keys = ["SRCC_within", "SRCC", "KRCC", "PLCC", "MAE", "pair_acc"]
        keys = [k for k in keys if k in next(iter(res["summary"].values()))]
        lines += [
            f"### {res['dataset']} ({res['backbone']}, pretrained={res['pretrained']}, "
            f"{res['n_images']} images, {res['folds']} folds)",
            "",
            "| method | " + " | ".join(keys) + " | code |",
            "|---" * (len(keys) + 2) + "|",
        ]
        for method, s in res["summary"].items():
            cells = [f"{s[k][0]:.3f} ± {s[k][1]:.3f}" for k in keys]
            cells.append(res.get("commits", {}).get(method, ""))
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    key = "SRCC_within" if results[0]["synthetic"] else "SRCC"
    methods = list(results[0]["summary"])
    fig = Figure(figsize=(max(6, 1.3 * len(results) * len(methods) / 3), 4), layout="constrained")
    ax = fig.add_subplot()
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        vals = [r["summary"].get(method, {key: [np.nan, 0]})[key] for r in results]
        ax.bar(
            np.arange(len(results)) + j * width,
            [v[0] for v in vals],
            width,
            yerr=[v[1] for v in vals],
            label=method,
        )
    ax.set_xticks(np.arange(len(results)) + 0.4 - width / 2, [r["dataset"] for r in results])
    ax.set_ylabel(key)
    ax.set_title(f"{results[0]['backbone']} (pretrained={results[0]['pretrained']})")
    ax.legend(fontsize=7, ncol=4)
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="skrank-tiny")
    p.add_argument("--pretrained", default="none")
    p.add_argument("--dataset", default="all", help="a synthetic kind, a real dataset, or all")
    p.add_argument("--root", help="dataset folder for the real datasets")
    p.add_argument("--device", default="cpu")
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--n-sources", type=int, default=None, help="photos per synthetic task")
    p.add_argument("--methods", nargs="*", help="subset of methods to run")
    p.add_argument("--render", metavar="JSON", help="only rewrite the .md and .png of a result")
    p.add_argument(
        "--merge",
        action="store_true",
        help="update the existing result file: replace only the datasets and methods run now",
    )
    p.add_argument("--tag", help="result file name part (default: --dataset)")
    args = p.parse_args(argv)
    if args.render:
        stem = Path(args.render).with_suffix("")
        results = json.loads(Path(args.render).read_text())
        note = stem.with_suffix(".md").read_text().split("###")[0].split("**")[0]
        stem.with_suffix(".md").write_text(note + markdown(results))
        plot(results, stem.with_suffix(".png"))
        return
    names = SYNTHETIC if args.dataset == "all" else args.dataset.split(",")
    args.commit = git_commit()  # once: later edits to the tree do not relabel this run
    tag = args.tag or args.dataset.replace(",", "+")
    stem = RESULTS / f"quality-{args.backbone}-{tag}"
    note = (
        "Random backbones say nothing about CLIP semantics: these rows measure the method "
        "on low-level cues only.\n\n"
        if args.pretrained in (None, "none")
        else ""
    )
    results = []
    if args.merge and stem.with_suffix(".json").exists():
        results = json.loads(stem.with_suffix(".json").read_text())
        produced_at = git_commit(stem.with_suffix(".json"))  # rows without their own record
        for r in results:
            r.setdefault("commits", dict.fromkeys(r["summary"], produced_at))
    for name in names:  # files rewritten after each dataset: a long run keeps what it did
        results = merge(results, run(args, name))
        write_json(stem.with_suffix(".json"), results)
        stem.with_suffix(".md").write_text(note + markdown(results))
    plot(results, stem.with_suffix(".png"))
    print(f"\n{markdown(results)}\nwrote {stem}.json/.md/.png")


if __name__ == "__main__":
    main()
