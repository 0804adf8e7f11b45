"""Speed and memory of skrank, measured side by side in one run.

Usage (from the repository root)::

    python -m benchmarks.bench_speed            # ViT-B-32 (random init), 224 px, CPU
    python -m benchmarks.bench_speed --quick    # smaller sizes, a smoke run
    python -m benchmarks.bench_speed --backbone ViT-B-16 --batch-size 64 --device cuda

Writes ``benchmarks/results/speed-<machine>.json`` and ``.png``. Every figure is a
ratio of two measurements taken in this run on the same images (ours vs. the
reference code's cost model), plus the machine's own sgemm peak for MFU.
Peak-memory figures run in child processes and report peak RSS growth.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import (
    RESULTS,
    json_from_child,
    machine_name,
    naive_pair_features,
    status_mib,
    timed,
    write_json,
)

# --------------------------------------------------------------------------- helpers


def rss_mib() -> float:
    """Current resident memory; also resets the peak, so peak_rss_mib() measures from here.

    (getrusage's ru_maxrss survives exec, so a child would report its parent's peak.)
    """
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset VmHWM to the current RSS
    return status_mib("VmRSS")


def peak_rss_mib() -> float:
    return status_mib("VmHWM")


def images_for(n: int, size: int) -> tuple[list, np.ndarray, np.ndarray]:
    from skrank.datasets import make_ranking_task

    n_sources = max(2, int(np.ceil(n / 8)))
    task = make_ranking_task("blur", n_levels=8, image_size=size, n_sources=n_sources)
    return task.images[:n], task.target[:n], np.asarray(task.groups)[:n]


def ranker(args, **kw):
    from skrank import CLIPRanker

    params = dict(
        backbone=args.backbone,
        pretrained=None,
        device=args.device,
        batch_size=args.batch_size,
        random_state=0,
        lr=1e-4,
    )
    params.update(kw)
    return CLIPRanker("Sort the images by how blurry they are.", **params)


def child(mode: str, args) -> dict:
    """Run one memory measurement in a fresh process; returns its JSON."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.bench_speed",
        "--child",
        mode,
        "--backbone",
        args.backbone,
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
    ]
    if args.quick:
        cmd.append("--quick")
    return json_from_child(cmd)


# --------------------------------------------------------------------------- measurements


def sgemm_peak(device: str, n: int = 2048) -> float:
    """Best FLOP/s of an n×n float32 matmul on this machine."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def run():
        for _ in range(5):
            a @ b
        sync()

    t, _ = timed(run, repeats=3)
    return 5 * 2 * n**3 / t


def pair_branch_child(variant: str, quick: bool) -> dict:
    from skrank._model.adapter import RelationAttention

    torch.manual_seed(0)
    B, L, d = (32, 98, 512) if quick else (64, 196, 512)
    rel = RelationAttention(d, 8, 16)
    x = torch.randn(B, L, d, requires_grad=True)

    def step(inp):
        if variant == "naive":
            feats = naive_pair_features(rel, inp)
        else:
            feats = rel.all_pairs(*rel.stats(inp))
        feats.square().mean().backward()
        return feats.detach()

    # One tiny warm-up call initialises the kernels and thread pools, whose one-off
    # allocations would otherwise count as the branch's memory.
    step(torch.randn(2, 4, d, requires_grad=True))
    base = rss_mib()
    t, feats = timed(lambda: step(x), repeats=1 if variant == "naive" else 3)
    return {
        "seconds": t,
        "peak_rss_growth_mib": peak_rss_mib() - base,
        "B": B,
        "L": L,
        "d": d,
        "checksum": float(feats.double().abs().sum()),
    }


def disk_fit_child(args) -> dict:
    from skrank._encoding.backbone import load_backbone

    n = 200 if args.quick else 2000
    images, y, _ = images_for(n, 224)
    load_backbone(args.backbone, None, "cpu" if args.device == "auto" else args.device)
    base = rss_mib()
    with tempfile.TemporaryDirectory() as tmp:
        r = ranker(args, cache="disk", cache_dir=tmp, max_epochs=1)
        t, _ = timed(lambda: r.fit(images, y))
    return {
        "n_images": n,
        "seconds": t,
        "rss_after_backbone_mib": base,
        "peak_rss_growth_mib": peak_rss_mib() - base,
        "images_bytes_mib": sum(im.nbytes for im in images) / 2**20,
    }


def mfu(args, backbone) -> dict:
    """Achieved FLOP/s of cached training steps (adapter forward + backward + AdamW)."""
    from torch.utils.flop_counter import FlopCounterMode

    from skrank._model.adapter import AdapterConfig, RankingAdapter
    from skrank._model.losses import ranking_loss, regression_loss
    from skrank._model.training import build_optimizer

    torch.manual_seed(0)
    dev = torch.device("cpu" if args.device == "auto" else args.device)
    B, L, C = args.batch_size, backbone.n_image_tokens, backbone.image_dim
    model = RankingAdapter(AdapterConfig(C, backbone.text_dim, d_model=backbone.embed_dim)).to(dev)
    opt = build_optimizer(model, 1e-4, 0.01)
    x = torch.randn(B, L, C, device=dev)
    text, valid = backbone.text_tokens(["Sort the images by how blurry they are."])
    text, valid = text.to(dev), valid.to(dev)
    y = torch.randn(B, device=dev)
    mask = ~torch.eye(B, dtype=torch.bool, device=dev)

    def step():
        scores, fused = model(x, text, valid)
        loss = 0.2 * regression_loss(scores, y) + ranking_loss(model.pair_logits(fused), y, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    n = 3 if args.quick else 10
    t, _ = timed(lambda: [step() for _ in range(n)])
    return {
        "flops_per_step": flops,
        "seconds_per_step": t / n,
        "flops_per_s": flops * n / t,
        "images_per_s": B * n / t,
    }


# --------------------------------------------------------------------------- main


def pipeline(args, backbone, n: int, workers: tuple[int, ...]) -> dict:
    """Decode-only, tower-only and end-to-end images/s from JPEG files, side by side."""
    from PIL import Image

    from skrank._encoding.encoder import Encoder
    from skrank._encoding.images import Preprocessor, iter_pixel_batches

    photos, _, _ = images_for(n, 2 * backbone.image_size[0])  # decoding includes a resize
    preprocess = Preprocessor.from_info(backbone.info)
    out: dict = {"n_files": n, "jpeg_size": list(photos[0].shape[:2])}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, photo in enumerate(photos):
            paths.append(os.path.join(tmp, f"{i}.jpg"))
            Image.fromarray(photo).save(paths[-1], quality=90)
        batches = [px for _, px, _ in iter_pixel_batches(paths, preprocess, args.batch_size)]
        t_tower, _ = timed(lambda: [backbone.image_tokens(px).cpu() for px in batches], 2)
        out["tower_only_images_per_s"] = n / t_tower
        for w in workers:
            t_dec, _ = timed(
                lambda w=w: [0 for _ in iter_pixel_batches(paths, preprocess, args.batch_size, w)],
                2,
            )
            encoder = Encoder(backbone, batch_size=args.batch_size, num_workers=w)
            t_e2e, _ = timed(
                lambda encoder=encoder: [b.views[0].cpu() for b in encoder.stream(paths)], 2
            )
            out[f"decode_only_workers{w}_images_per_s"] = n / t_dec
            out[f"end_to_end_workers{w}_images_per_s"] = n / t_e2e
    shown = ", ".join(
        f"{k.replace('_images_per_s', '')} {v:.1f}" for k, v in out.items() if "per_s" in k
    )
    print(f"images/s from JPEG files: {shown}")
    return out


def run(args) -> dict:
    from sklearn.model_selection import GridSearchCV, GroupKFold

    from skrank._encoding.backbone import Backbone, load_backbone
    from skrank._encoding.encoder import Encoder
    from skrank.metrics import spearman_scorer

    device = "cpu" if args.device == "auto" else args.device
    res: dict = {
        "machine": machine_name(device),
        "backbone": args.backbone,
        "device": device,
        "batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "quick": args.quick,
    }
    backbone = load_backbone(args.backbone, None, device)
    size = backbone.image_size[0]
    n = 32 if args.quick else 64
    images, y, groups = images_for(n, size)
    print(f"{args.backbone} ({size} px) on {device}, {n} images, batch {args.batch_size}")

    peak = sgemm_peak(device)
    res["sgemm_peak_gflops"] = peak / 1e9
    print(f"sgemm peak: {peak / 1e9:.0f} GFLOP/s")

    def encode_all():
        # Tokens land on the host, as the cache stores them (this also syncs a GPU).
        encoder = Encoder(backbone, batch_size=args.batch_size)
        return sum(len(batch.views[0].cpu()) for batch in encoder.stream(images))

    t_enc, _ = timed(encode_all, repeats=2)
    res["encode_images_per_s"] = n / t_enc
    print(f"encode only: {n / t_enc:.1f} images/s")
    res["pipeline"] = pipeline(args, backbone, n, (0, os.cpu_count() or 1))
    if args.only == "pipeline":
        return res

    epochs = 3 if args.quick else 10
    t_mem, fitted = timed(lambda: ranker(args, max_epochs=epochs).fit(images, y))
    t_none, _ = timed(lambda: ranker(args, max_epochs=epochs, cache=None).fit(images, y))
    res["fit"] = {
        "epochs": epochs,
        "n_images": n,
        "seconds_cache_memory": t_mem,
        "seconds_cache_none": t_none,
        "speedup": t_none / t_mem,
    }
    print(
        f"fit x{epochs} epochs: memory cache {t_mem:.1f} s, no cache {t_none:.1f} s "
        f"-> {t_none / t_mem:.2f}x"
    )

    t_pred, _ = timed(lambda: fitted.predict(images), repeats=2)
    res["predict"] = {"images_per_s": n / t_pred, "ratio_to_encode_only": t_enc / t_pred}
    print(f"predict: {n / t_pred:.1f} images/s = {t_enc / t_pred:.2f}x encode-only")

    counts: list[int] = []
    original = Backbone.image_tokens

    def counting(self, pixels, *args, **kwargs):
        counts.append(len(pixels))
        return original(self, pixels, *args, **kwargs)

    grid = {"lr": [1e-4, 3e-4], "n_prompt_tokens": [0, 32]}
    grid_epochs = 2 if args.quick else 3
    Backbone.image_tokens = counting
    try:
        with tempfile.TemporaryDirectory() as tmp:
            search = GridSearchCV(
                ranker(args, max_epochs=grid_epochs, cache="disk", cache_dir=tmp),
                grid,
                cv=GroupKFold(2),
                scoring=spearman_scorer,
            )
            t_grid_cache, _ = timed(lambda: search.fit(images, y, groups=groups))
        encoded_cached = sum(counts)
        counts.clear()
        search = GridSearchCV(
            ranker(args, max_epochs=grid_epochs, cache=None),
            grid,
            cv=GroupKFold(2),
            scoring=spearman_scorer,
        )
        t_grid_none, _ = timed(lambda: search.fit(images, y, groups=groups))
        encoded_none = sum(counts)
    finally:
        Backbone.image_tokens = original
    res["grid_search"] = {
        "candidates": 4,
        "folds": 2,
        "epochs": grid_epochs,
        "n_images": n,
        "seconds_shared_disk_cache": t_grid_cache,
        "seconds_cache_none": t_grid_none,
        "speedup": t_grid_none / t_grid_cache,
        "encodes_per_image_view_cached": encoded_cached / (2 * n),
        "encodes_per_image_cache_none": encoded_none / n,
    }
    print(
        f"grid 4x2: shared disk cache {t_grid_cache:.1f} s, no cache {t_grid_none:.1f} s -> "
        f"{t_grid_none / t_grid_cache:.2f}x; encodes per image view "
        f"{encoded_cached / (2 * n):.2f} (cached) vs {encoded_none / n:.1f} per image (none)"
    )

    m = mfu(args, backbone)
    m["mfu"] = m["flops_per_s"] / peak
    res["cached_training_steps"] = m
    print(
        f"cached training steps: {m['flops_per_s'] / 1e9:.0f} GFLOP/s = {m['mfu']:.0%} of "
        f"sgemm peak ({m['images_per_s']:.0f} images/s)"
    )

    fast = child("pair-fast", args)
    naive = child("pair-naive", args)
    res["pair_branch"] = {
        "factorised": fast,
        "naive": naive,
        "speedup": naive["seconds"] / fast["seconds"],
        "memory_ratio": naive["peak_rss_growth_mib"] / max(fast["peak_rss_growth_mib"], 1.0),
    }
    print(
        f"pair branch B={fast['B']} L={fast['L']}: factorised {fast['seconds']:.3f} s "
        f"{fast['peak_rss_growth_mib']:.0f} MiB, naive {naive['seconds']:.2f} s "
        f"{naive['peak_rss_growth_mib']:.0f} MiB -> {res['pair_branch']['speedup']:.0f}x "
        f"faster, {res['pair_branch']['memory_ratio']:.0f}x less memory"
    )

    disk = child("disk-fit", args)
    res["disk_fit_memory"] = disk
    print(
        f"fit {disk['n_images']} images, cache='disk': resident memory grew "
        f"{disk['peak_rss_growth_mib']:.0f} MiB beyond the loaded backbone"
    )
    return res


def plot(res: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    labels = [
        "fit (10 ep.)\nnone/memory",
        "grid search\nnone/disk",
        "pair branch\ntime",
        "pair branch\nmemory",
        "predict /\nencode-only",
        "MFU",
    ]
    values = [
        res["fit"]["speedup"],
        res["grid_search"]["speedup"],
        res["pair_branch"]["speedup"],
        res["pair_branch"]["memory_ratio"],
        res["predict"]["ratio_to_encode_only"],
        res["cached_training_steps"]["mfu"],
    ]
    targets = [1.7, 2.0, 50, 50, 0.7, 0.45]
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    ax.bar(x, values, color=["C2" if v >= t else "C3" for v, t in zip(values, targets)])
    ax.scatter(x, targets, marker="_", s=600, color="k", label="target")
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("ratio (log scale)")
    ax.set_title(f"skrank speed, {res['backbone']} on {res['device']} ({res['machine']})")
    ax.legend()
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbone", default="ViT-B-32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", choices=["pipeline"], help="stop after decode/tower/end-to-end rates")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help="JSON path (default: results/speed-<machine>.json)")
    args = p.parse_args(argv)
    if args.child:
        if args.child == "disk-fit":
            out = disk_fit_child(args)
        else:
            out = pair_branch_child(args.child.split("-")[1], args.quick)
        print(json.dumps(out))
        return
    res = run(args)
    stem = f"speed-{res['machine']}{'-quick' if args.quick else ''}"
    if args.only:
        stem = f"{args.only}-{res['machine']}-{args.backbone}"
    out = Path(args.out) if args.out else RESULTS / f"{stem}.json"
    write_json(out, res)
    if args.only:
        print(f"wrote {out}")
        return
    plot(res, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
