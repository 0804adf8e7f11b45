"""GPU check: one prepared run on a CUDA machine, under 8 minutes.

From the repository root::

    python -m benchmarks.gpu_check              # on the GPU machine
    python -m benchmarks.gpu_check --smoke      # here, on the CPU: every step, tiny sizes

1. Training MFU: the paper's adapter size (d_model = 512 on ViT-B-16 tokens,
   196 x 512, random init) trained by ``skrank._model.training.train`` in bf16 on
   tokens cached on the device, batch 64. FLOPs of one step are counted with
   ``torch.utils.flop_counter`` (forward, backward); MFU is the achieved
   FLOP/s over the GPU's bf16 dense peak (table below, or ``--peak-tflops``).
2. Peak GPU memory of one training step, beside the materialised pair branch
   (the reference code's joint softmax over every pair's 2L keys) at B = 64.
3. Encode throughput of ViT-B-16 and ``convnext_large_d_320`` (random init) at
   batch 256 from JPEG files, with 0 and 14 decode workers.
4. ``precision="fp32"`` against ``"bf16"``: the same fitted adapter predicts
   matching rankings (Spearman between the two), and two fits agree.
5. A CUDA-fitted ranker pickled and reloaded in a CPU-only process predicts
   the same to bf16 tolerance.

Writes ``benchmarks/results/gpu-<gpu>.json`` with an ``mfu`` field and every
line it printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import RESULTS, naive_pair_features, write_json

# bf16 dense tensor-core peaks (TFLOP/s, no sparsity) from the vendors' data sheets.
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 80GB HBM3": 989.0, "H100": 756.0, "A100": 312.0}
LINES: list[str] = []


def say(text: str) -> None:
    print(text, flush=True)
    LINES.append(text)


def peak_tflops(name: str, override: float | None) -> float | None:
    if override:
        return override
    for key, value in PEAK_BF16_TFLOPS.items():  # most specific names first
        if key in name:
            return value
    return None


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def blur_task(size: int, n_sources: int | None = None):
    from skrank.datasets import holdout_by_source, make_ranking_task

    task = make_ranking_task("blur", image_size=size, random_state=0, n_sources=n_sources)
    test = holdout_by_source(task.groups)
    images = task.images
    train = ([x for x, t in zip(images, test) if not t], task.target[~test])
    held = (
        [x for x, t in zip(images, test) if t],
        task.target[test],
        np.asarray(task.groups)[test],
    )
    return task.instruction, train, held


def training_mfu(device, backbone_name: str, n_images: int, epochs: int, peak) -> dict:
    """bf16 training by the real loop on device-cached tokens; FLOPs counted per step."""
    from torch.utils.flop_counter import FlopCounterMode

    from skrank._encoding.backbone import load_backbone
    from skrank._encoding.cache import MemoryCache
    from skrank._encoding.encoder import Encoder
    from skrank._estimator.fitting import initial_adapter, settings
    from skrank._estimator.inference import text_bank
    from skrank._estimator.params import validate_params
    from skrank._estimator.presets import resolve
    from skrank._estimator.ranker import CLIPRanker
    from skrank._model.losses import ranking_loss, regression_loss
    from skrank._model.training import TrainData, train

    bb = load_backbone(backbone_name, None, device)
    rng = np.random.default_rng(0)
    size = bb.image_size[0]
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n_images)]
    t0 = time.perf_counter()
    source = MemoryCache(Encoder(bb, batch_size=256), images, augment=True)
    sync(device)
    encode_s = time.perf_counter() - t0
    # The paper preset's adapter (precision "auto": bf16 on CUDA), validated and its
    # preset resolved as fit does.
    params = validate_params(CLIPRanker(device=str(device), preset="paper").get_params())
    params = resolve(params, bb.weights_identity, np.zeros(n_images, np.int64), None)
    text = text_bank(bb, ["Sort the images by how blurry they are."]).to(device)
    fit = settings(params, bb, n_instructions=1, auto_stopping=False)
    adapter = initial_adapter(fit.adapter, bb, seed=0)
    y = rng.standard_normal(n_images)
    cfg = dataclasses.replace(fit.train, lr=1e-4, seed=0, max_epochs=epochs)
    data = TrainData(source, text, y, np.zeros(n_images, np.int64), None, np.arange(n_images))

    # FLOPs of one step (forward and backward, losses included), counted once.
    adapter.to(device).train()
    tokens = source.tokens(np.arange(64), np.zeros(64, bool), device)
    yt = torch.as_tensor(y[:64], dtype=torch.float32, device=device)
    mask = ~torch.eye(64, dtype=torch.bool, device=device)
    counter = FlopCounterMode(display=False)
    with counter, torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        scores, fused = adapter(tokens, *text.get(0))
        loss = regression_loss(scores, yt) + ranking_loss(adapter.pair_logits(fused), yt, mask)
        loss.backward()
    flops = counter.get_total_flops()
    adapter.zero_grad(set_to_none=True)

    train(adapter, data, dataclasses.replace(cfg, max_epochs=1))
    sync(device)
    t0 = time.perf_counter()
    trained = train(adapter, data, cfg)
    history, n_epochs = trained.history, trained.n_iter
    sync(device)
    seconds = time.perf_counter() - t0
    steps = n_epochs * -(-n_images // 64)
    achieved = flops * steps / seconds
    out = {
        "backbone": backbone_name,
        "n_images": n_images,
        "batch_size": 64,
        "d_model": adapter.cfg.d_model,
        "tokens": [bb.n_image_tokens, bb.image_dim],
        "encode_seconds": encode_s,
        "token_placement": source.info["placement"],
        "flops_per_step": flops,
        "steps": steps,
        "seconds": seconds,
        "images_per_s": steps * 64 / seconds,
        "achieved_tflops": achieved / 1e12,
        "peak_bf16_tflops": peak,
        "mfu": achieved / (peak * 1e12) if peak else None,
        "final_loss": history[-1]["loss"],
    }
    say(f"training: {json.dumps(out)}")
    return out


def step_memory(device, quick: bool) -> dict:
    """Peak memory of one adapter step against the materialised pair branch, B=64."""
    from skrank._model.adapter import AdapterConfig, RankingAdapter

    B, L, d = (8, 16, 64) if quick else (64, 196, 512)
    torch.manual_seed(0)
    model = RankingAdapter(AdapterConfig(d, d, d_model=d)).to(device)
    text = torch.randn(1, 8, d, device=device)
    valid = torch.ones(1, 8, dtype=torch.bool, device=device)
    out = {"B": B, "L": L, "d": d}
    for name in ("adapter_step", "materialised_pair_branch"):
        x = torch.randn(B, L, d, device=device, requires_grad=name != "adapter_step")
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if name == "adapter_step":
                scores, fused = model(x, text, valid)
                loss = scores.square().mean() + model.pair_logits(fused).square().mean()
            else:
                loss = naive_pair_features(model.relation, x).square().mean()
        loss.backward()
        sync(device)
        if device.type == "cuda":
            out[f"{name}_peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        model.zero_grad(set_to_none=True)
    if device.type == "cuda":
        out["ratio"] = out["materialised_pair_branch_peak_mib"] / out["adapter_step_peak_mib"]
    say(f"memory: {json.dumps(out)}")
    return out


def encode_throughput(device, names: list[str], n_files: int, workers: list[int]) -> dict:
    """Images/s from JPEG files through a frozen tower at batch 256."""
    from PIL import Image

    from skrank._encoding.backbone import load_backbone
    from skrank._encoding.encoder import Encoder

    instruction, (train_x, _), _ = blur_task(384)
    out: dict = {"n_files": n_files}
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(n_files):
            path = os.path.join(tmp, f"{i}.jpg")
            Image.fromarray(train_x[i % len(train_x)]).save(path, quality=90)
            paths.append(path)
        for name in names:
            bb = load_backbone(name, None, device)
            list(Encoder(bb, batch_size=256).stream(paths[:256]))  # warm-up
            for w in workers:
                sync(device)
                t0 = time.perf_counter()
                encoder = Encoder(bb, batch_size=256, num_workers=w)
                n = sum(len(batch.rows) for batch in encoder.stream(paths))
                sync(device)
                out[f"{name}_workers{w}_images_per_s"] = n / (time.perf_counter() - t0)
            say(f"encode {name}: " + json.dumps({k: v for k, v in out.items() if name in k}))
    return out


def precision_agreement(device, backbone_name: str, size: int, epochs: int) -> dict:
    from skrank import CLIPRanker
    from skrank.metrics import spearman_score

    instruction, (train_x, train_y), (test_x, test_y, test_g) = blur_task(size)
    # "auto" is CUDA here and the CPU in the pickle check's CUDA-less process.
    where = "auto" if device.type == "cuda" else "cpu"
    common = dict(backbone=backbone_name, pretrained=None, random_state=0, max_epochs=epochs)
    bf16 = CLIPRanker(instruction, device=where, precision="auto", **common)
    bf16.fit(train_x, train_y)
    pred_bf16 = bf16.predict(test_x)
    pred_fp32_same = bf16.set_params(precision="fp32").predict(test_x)
    bf16.set_params(precision="auto")
    fp32 = CLIPRanker(instruction, device=where, precision="fp32", **common)
    pred_fp32_fit = fp32.fit(train_x, train_y).predict(test_x)
    out = {
        "same_adapter_srcc_bf16_vs_fp32": spearman_score(pred_fp32_same, pred_bf16),
        "two_fits_srcc_bf16_vs_fp32": spearman_score(pred_fp32_fit, pred_bf16),
        "held_out_within_photo_srcc_bf16": spearman_score(test_y, pred_bf16, groups=test_g),
        "held_out_within_photo_srcc_fp32": spearman_score(test_y, pred_fp32_fit, groups=test_g),
    }
    say(f"precision: {json.dumps(out)}")
    return out, bf16, test_x


def pickle_to_cpu(ranker, images) -> dict:
    on_device = ranker.predict(images)
    with tempfile.TemporaryDirectory() as tmp:
        model, pixels, out = (Path(tmp) / n for n in ("r.pkl", "x.npy", "p.npy"))
        model.write_bytes(pickle.dumps(ranker))
        np.save(pixels, np.stack(images))
        code = (
            "import pickle, numpy as np, torch; assert not torch.cuda.is_available();"
            f"r = pickle.loads(open({str(model)!r}, 'rb').read());"
            f"np.save({str(out)!r}, r.predict(list(np.load({str(pixels)!r}))))"
        )
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
        on_cpu = np.load(out)
    diff = np.abs(on_cpu - on_device)
    scale = float(np.std(on_device)) or 1.0
    res = {
        "max_abs_diff": float(diff.max()),
        "prediction_std": scale,
        "max_diff_over_std": float(diff.max()) / scale,
        "within_bf16_tolerance": bool(diff.max() <= 0.05 * scale),  # bf16 keeps ~3 digits
    }
    say(f"pickle CUDA -> CPU: {json.dumps(res)}")
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU, to test the script")
    p.add_argument("--peak-tflops", type=float, default=None, help="bf16 dense peak of this GPU")
    args = p.parse_args(argv)
    t_start = time.perf_counter()
    if args.smoke:
        device, gpu = torch.device("cpu"), "cpu-smoke"
    else:
        assert torch.cuda.is_available(), "this check needs a CUDA device (or --smoke)"
        device, gpu = torch.device("cuda"), torch.cuda.get_device_name(0)
    peak = None if args.smoke else peak_tflops(gpu, args.peak_tflops)
    report: dict = {"gpu": gpu, "torch": torch.__version__}
    say(f"device: {gpu}, torch {torch.__version__}, bf16 peak {peak} TFLOP/s")
    tower = "skrank-tiny" if args.smoke else "ViT-B-16"
    train_res = training_mfu(
        device, tower, 128 if args.smoke else 4096, 1 if args.smoke else 4, peak
    )
    report["training"] = train_res
    report["mfu"] = train_res["mfu"]
    report["memory"] = step_memory(device, args.smoke)
    towers = ["skrank-tiny"] if args.smoke else ["ViT-B-16", "convnext_large_d_320"]
    report["encode"] = encode_throughput(
        device, towers, 64 if args.smoke else 2048, [0, 2] if args.smoke else [0, 14]
    )
    res, ranker, test_x = precision_agreement(
        device, tower, 64 if args.smoke else 224, 1 if args.smoke else None
    )
    report["precision"] = res
    if not args.smoke:
        report["pickle_cuda_to_cpu"] = pickle_to_cpu(ranker, test_x[:32])
    report["seconds"] = time.perf_counter() - t_start
    say(f"total {report['seconds']:.0f} s")
    report["printed"] = LINES
    name = gpu.replace(" ", "-")
    out = RESULTS / f"gpu-{name}.json"
    if args.smoke:
        out = Path(tempfile.gettempdir()) / f"gpu-{name}.json"
    write_json(out, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
