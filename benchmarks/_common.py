"""What the benchmark scripts share: where results go, which code made them, the
tasks, folds, metrics, baselines and model settings they are measured with.

Importing this module sets ``HF_HUB_OFFLINE=1`` (unless the environment sets it)
and silences open_clip's warning about random weights: the benchmarks run offline,
on random towers unless told otherwise. Scripts import it before anything that
imports open_clip.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import subprocess
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", message=".*random.*weights")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).parent.parent  # the repository
RESULTS = Path(__file__).parent / "results"
SYNTHETIC = ("blur", "noise", "jpeg", "brightness", "contrast", "pixelate", "count")

# --------------------------------------------------------------------------- model settings

# The reference's depth (2 fusion and 2 post-fusion layers): with nothing else set,
# the deep adapter of the learning curves' ``deep`` rows and of skrank 0.1.
DEEP = {"n_fusion_layers": 2, "n_post_layers": 2}
# The reference-faithful model: the reference's depth, the paper's mean head and
# training settings, and the paper's 30 epochs (no step floor, unlike preset="paper").
REFERENCE = {
    "n_fusion_layers": 2,
    "n_post_layers": 2,
    "score_pooling": "mean",
    "image_positions": "none",
    "lr": 5e-5,
    "reg_weight": 0.2,
    "max_epochs": 30,
}
# The paper-fidelity ablation (bench_quality.py and learning_curves.py run these rows
# only when named in --methods): the reference-faithful model, and it with each of
# skrank's training departures added on its own.
FIDELITY = {
    "reference": REFERENCE,
    "ref+mean_std": {**REFERENCE, "score_pooling": "mean_std"},
    "ref+reg_weight=1": {**REFERENCE, "reg_weight": 1.0},
    "ref+lr=auto": {**REFERENCE, "lr": "auto"},
    "ref+300-step floor": {**REFERENCE, "max_epochs": None},
}

# --------------------------------------------------------------------------- records


def git_commit(path: Path | None = None, repo: Path = ROOT) -> str:
    """The short commit of the code (or, given ``path``, the last commit of that file).

    A working tree with uncommitted changes to tracked files (results aside) gets
    ``+diff.<12 hex digits>``: the SHA-256 of ``git diff HEAD``, so a row from a dirty
    tree names exactly which changes it ran with, and never passes for the commit.
    Outside a git checkout: ``"unknown"``.
    """

    def git(*cmd):
        try:
            out = subprocess.run(["git", *cmd], capture_output=True, text=True, cwd=repo)
        except OSError:
            return ""
        return out.stdout

    if path is not None:
        return git("log", "-1", "--format=%h", "--", str(path)).strip() or "unknown"
    # Results being written (by this or an earlier run) do not make the code dirty.
    diff = git("diff", "HEAD", "--", ":/", ":(top,exclude)benchmarks/results")
    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    if not diff:
        return commit
    return f"{commit}+diff.{hashlib.sha256(diff.encode()).hexdigest()[:12]}"


def write_json(path: Path, data, indent: int | None = 2) -> None:
    """``data`` as JSON at ``path`` (its folder made if missing), newline-terminated."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=indent) + "\n")


def status_mib(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``, ...) in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def reset_peak_rss() -> None:
    """Restart ``VmHWM`` from the resident memory of now (Linux: ``/proc/self/clear_refs``),
    so the next :func:`status_mib` ``("VmHWM")`` is the peak of what ran since."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def json_from_child(cmd: list[str]) -> dict:
    """Run ``cmd`` in a fresh process from the repository; the JSON of its last line."""
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine_name(device: str) -> str:
    """A CUDA device's name, or ``<arch>-<cores>cpu`` (``x86_64-2cpu``)."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device).replace(" ", "-")
    return f"{platform.machine()}-{os.cpu_count()}cpu"


def timed(fn, repeats=1):
    """(best seconds over ``repeats`` calls of ``fn``, the last call's result)."""
    best = float("inf")
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# --------------------------------------------------------------------------- tasks and folds


def load_task(name: str, root: str | None, image_size: int, n_sources: int | None):
    """(images, target, groups, instruction, folds or None, synthetic?)."""
    from skrank import datasets

    if name in SYNTHETIC:
        t = datasets.make_ranking_task(
            name, image_size=image_size, random_state=0, n_sources=n_sources
        )
        return t.images, t.target, np.asarray(t.groups), t.instruction, None, True
    if root is None:
        raise SystemExit(f"--root is needed for dataset {name!r}")
    bunch = getattr(datasets, f"load_{name}")(root)
    frame = bunch.frame
    groups = frame["user_id"].to_numpy() if "user_id" in frame else np.arange(len(frame))
    folds = frame["fold"].to_numpy() if "fold" in frame else None
    return frame["image"].tolist(), bunch.target, groups, bunch.instruction, folds, False


def splits(groups, folds, n_folds, seed=0):
    """(train rows, test rows) per fold: the dataset's own folds, else grouped folds."""
    from sklearn.model_selection import GroupKFold

    if folds is not None:
        for f in np.unique(folds):
            yield np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        return
    yield from GroupKFold(n_folds, shuffle=True, random_state=seed).split(groups, groups=groups)


def probe_tasks(doc: str, default_dataset: str, argv=None):
    """Parse the probe experiments' shared options; yield (args, backbone, name, images,
    y, groups, folds, synthetic) per dataset, on the random backbone's input size."""
    import argparse

    from skrank._encoding.backbone import load_backbone

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


# --------------------------------------------------------------------------- metrics

# Result keys, in the order written, and the skrank.metrics.evaluation keys they come from.
POOLED = {
    "SRCC": "srcc",
    "KRCC": "krcc",
    "PLCC": "plcc",
    "MAE": "mae",
    "pair_acc": "pairwise_accuracy",
}
WITHIN = {"SRCC_within": "srcc", "KRCC_within": "krcc", "pair_acc_within": "pairwise_accuracy"}


def metrics(y, pred, groups, synthetic: bool) -> dict:
    """The POOLED metrics; for the synthetic tasks also the WITHIN (source photo) means."""
    from skrank.metrics import evaluation

    table = evaluation(y, pred, groups=groups if synthetic else None)
    out = {key: table["pooled"][name] for key, name in POOLED.items()}
    if synthetic:
        out.update({key: table["per_group_mean"][name] for key, name in WITHIN.items()})
    return out


# --------------------------------------------------------------------------- features and baselines


def embeddings(backbone, images):
    """Pooled CLIP image embeddings (computed once per task, so no cache)."""
    from skrank import CLIPEmbedder

    device = str(backbone.device)
    embedder = CLIPEmbedder(backbone.name, backbone.pretrained, device=device, cache=None)
    return embedder.fit().transform(images)


def frozen_tokens(backbone, images) -> torch.Tensor:
    """(N, L, C) float32: the tokens CLIPRanker's adapter is trained on."""
    from skrank._encoding.cache import MemoryCache
    from skrank._encoding.encoder import Encoder

    cache = MemoryCache(Encoder(backbone, batch_size=32), images, augment=False)
    n = len(images)
    return cache.tokens(np.arange(n), np.zeros(n, bool), "cpu")


def hidden_states(backbone, images, batch_size=64):
    """Per batch of images: the frozen ViT's hidden states after the patch
    embedding and after each visual block, a list of (b, 1 + L, width)."""
    from skrank._encoding.images import Preprocessor, iter_pixel_batches

    visual = backbone.model.visual
    pre = Preprocessor.from_info(backbone.info)
    with torch.no_grad():
        for _, px, _ in iter_pixel_batches(images, pre, batch_size):
            states = [visual._embeds(px.to(backbone.device))]
            for block in visual.transformer.resblocks:
                states.append(block(states[-1]))
            yield states


def ridge(emb_train, y_train, emb_test):
    """``RidgeCV`` on standardised features: the linear probe."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 4, 15)))
    return model.fit(emb_train, y_train).predict(emb_test)


def train_head(tokens, y, train, pooling, seed, steps=300, lr=1e-4, d=512):
    """A trained linear projection of the frozen tokens and ``ScoreHead`` alone (no
    fusion, no pair branch): AdamW at a constant rate on the library's regression
    loss over the ``train`` rows; returns its scores for every row of ``tokens``."""
    from skrank._model.adapter import ScoreHead
    from skrank._model.losses import regression_loss

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


def naive_pair_features(rel, x):
    """The reference code's cost model: every pair's joint softmax over its 2L keys,
    materialised. Keys and values are the reference's: one projection of each token,
    layer-normed, serving as both (``RelationAttention`` with its LayerNorms)."""
    import math

    B, L, d = x.shape
    h, c = rel.n_heads, d // rel.n_heads
    q = rel.ln_q(rel.q(rel.tokens)).view(-1, h, c).transpose(0, 1)  # (h, R, c)
    kv = rel.ln_kv(rel.kv(x)).view(B, L, h, c).transpose(1, 2)  # (B, h, L, c)
    pair_kv = torch.cat([kv[:, None].expand(B, B, h, L, c), kv[None].expand(B, B, h, L, c)], dim=3)
    p = torch.softmax(q @ pair_kv.transpose(-1, -2) / math.sqrt(c), dim=-1)  # (B, B, h, R, 2L)
    o_i = p[..., :L] @ pair_kv[..., :L, :]  # (B, B, h, R, c)
    o_j = p[..., L:] @ pair_kv[..., L:, :]
    return rel.out((o_i - o_j).mean(dim=3).flatten(-2))  # (B, B, d)


def plot_curves(
    curves: dict,
    path: Path,
    *,
    ylabel: str,
    title: str,
    xlabel: str | None = None,
    dashed: tuple = (),
    ylim: tuple = (-0.1, 1.02),
    panel: tuple = (3.2, 2.6),
    max_cols: int = 4,
) -> None:
    """One panel per key of ``curves`` (at most ``max_cols`` a row), each a curve per
    method: ``curves[panel][method] = (sizes, means, stds)``, drawn with error bars on a
    log x axis (``dashed`` methods dashed), saved to ``path``. The learning curves', the
    preference benchmark's and E1's figures."""
    from matplotlib.figure import Figure

    names = list(curves)
    cols = min(max_cols, len(names))
    nrows = math.ceil(len(names) / cols)
    width, height = panel
    fig = Figure(figsize=(width * cols, height * nrows + 0.4), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        for method, (ns, mean, std) in curves[name].items():
            style = "--" if method in dashed else "-"
            ax.errorbar(ns, mean, yerr=std, marker="o", ms=3, capsize=2, ls=style, label=method)
        ax.set_xscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_ylim(*ylim)
        ax.grid(alpha=0.3)
        if xlabel:
            ax.set_xlabel(xlabel, fontsize=8)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    axes[0].set_ylabel(ylabel)
    axes[0].legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)


def curves_of(summary: dict, panels: list, methods: list, value) -> dict:
    """``plot_curves``' input from a summary keyed (panel, size, method): per panel and
    method, the sizes present and ``value(entry)`` = (mean, std) at each."""
    out = {}
    for name in panels:
        out[name] = {}
        for m in methods:
            ns = sorted(n for (k, n, mm) in summary if k == name and mm == m)
            if ns:
                pairs = [value(summary[(name, n, m)]) for n in ns]
                out[name][m] = (ns, [p[0] for p in pairs], [p[1] for p in pairs])
    return out
