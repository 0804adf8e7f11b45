"""Where one training step of the adapter goes, on cached ViT-B-32 tokens.

For the paper's model (``preset="paper"``: 2 fusion + 2 post-fusion layers,
mean head) and the small-data model (1 + 0, mean-and-spread head), at batch
32 and 64, in fp32 and (where the CPU computes bf16 natively) bf16 autocast:

- the time of one step as the training loop takes it (forward under
  ``skrank._devices.autocast``, both losses, backward, gradient clipping,
  AdamW), the median of several after a warm-up;
- the FLOPs counted by ``torch.utils.flop_counter``: of the whole step, and of
  each piece of the forward pass (counted piece by piece); and the share of
  this machine's fp32 sgemm rate (measured in the same run) the step reaches;
- the peak resident memory of a child process that loads the frozen ViT-B-32
  (both towers, random weights: speed and memory do not depend on them),
  builds the text bank and runs steps: backbone included;
- a profiler table of the fp32 paper step (``results/step-<machine>.txt``).

``--variant`` names the state of the code the run measured, kept beside each
row (``--variant before-kv`` ...), so runs before and after a change sit side by
side in one file. Results go to ``results/step-<machine>.json``; the commit is
recorded (a dirty tree as the hash of its diff).

    python -m benchmarks.bench_step                 # everything (about 4 min on 2 cores)
    python -m benchmarks.bench_step --quick          # fewer repeats
    python -m benchmarks.bench_step --only memory    # just the child-process memory
    python -m benchmarks.bench_step --only views     # the mirrored view; dropout attention
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from benchmarks._common import (
    RESULTS,
    git_commit,
    json_from_child,
    machine_name,
    reset_peak_rss,
    status_mib,
    timed,
    write_json,
)
from skrank._devices import cpu_bf16_native

BACKBONE = "ViT-B-32"
INSTRUCTION = "Sort the images by how blurry they are."


def sgemm_rate(sizes=(2048, 3072, 4096), repeats: int = 5) -> float:
    """Best FLOP/s of a float32 matmul of these square sizes on this machine, now."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def model_for(preset_name: str, backbone):
    """A seeded adapter of the preset's architecture, its optimiser and its loss weights."""
    from skrank._estimator.presets import PRESETS
    from skrank._model.adapter import AdapterConfig, RankingAdapter
    from skrank._model.training import build_optimizer

    preset = PRESETS[preset_name]
    cfg = AdapterConfig(
        backbone.image_dim,
        backbone.text_dim,
        d_model=backbone.embed_dim,
        n_fusion_layers=preset.n_fusion_layers,
        n_post_layers=preset.n_post_layers,
        score_pooling=preset.score_pooling,
    )
    adapter = RankingAdapter(cfg, torch.Generator().manual_seed(0)).train()
    return adapter, build_optimizer(adapter, 1e-4, 0.01), preset.reg_weight


def step_fn(adapter, optimizer, reg_weight: float, batch, precision: str):
    """One training step as ``skrank._model.training`` takes it."""
    from skrank import _devices as devices
    from skrank._model.losses import ranking_loss, regression_loss
    from skrank._model.training import optimizer_step

    tokens, text, valid, y = batch
    mask = ~torch.eye(len(y), dtype=torch.bool)
    constant = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)

    def step():
        with devices.autocast(tokens.device, precision):
            scores, fused = adapter(tokens, text, valid)
            reg = regression_loss(scores, y)
            rank = ranking_loss(adapter.pair_logits(fused), y, mask)
            loss = reg_weight * reg + rank
        optimizer_step(loss, adapter, optimizer, constant, 1.0)
        return loss.detach()

    return step


def batch_for(backbone, batch_size: int, seed: int = 0):
    """Cached-token stand-ins (random, fp16-rounded as the cache stores them) and targets."""
    from skrank._estimator.inference import text_bank

    g = torch.Generator().manual_seed(seed)
    tokens = torch.randn(batch_size, backbone.n_image_tokens, backbone.image_dim, generator=g)
    tokens = tokens.half().float()
    text, valid = text_bank(backbone, [INSTRUCTION]).get(0)
    return tokens, text, valid, torch.randn(batch_size, generator=g)


def step_flops(step) -> int:
    """FLOPs of one step (forward, backward, optimiser), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def forward_flops(adapter, batch) -> dict:
    """GFLOP of each piece of the adapter's forward pass (no gradients): each top-level
    module as torch's module tracker attributes it, and the pair branch (relation
    attention and pair head, reached through methods) counted on its own. The
    backward costs about twice each piece again."""
    from torch.utils.flop_counter import FlopCounterMode

    tokens, text, valid, _ = batch
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        _, fused = adapter(tokens, text, valid)
    out = {}
    for name, ops in counter.get_flop_counts().items():
        parts = name.split(".")
        if len(parts) == 2 or (len(parts) == 3 and parts[1] in ("fusion", "post")):
            out[".".join(parts[1:])] = sum(ops.values()) / 1e9
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        adapter.pair_logits(fused)
    out["pair branch (relation attention + pair head)"] = counter.get_total_flops() / 1e9
    return out


def time_steps(step, repeats: int) -> float:
    """Median seconds of one step after two warm-up steps."""
    step()
    step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def profile_table(step, rows: int = 25) -> str:
    from torch.profiler import ProfilerActivity, profile

    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
        step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def _in_child(call: str) -> dict:
    """``call`` (a function of this module, with its arguments) in a fresh process."""
    name = call.split("(")[0]
    code = f"import json; from benchmarks.bench_step import {name}; print(json.dumps({call}))"
    return json_from_child([sys.executable, "-c", code])


def memory_child(preset_name: str, batch_size: int, precision: str, release: bool) -> dict:
    """Peak resident memory of a process that loads the backbone and trains 3 steps
    (``release``: with the towers dropped before the steps, as a fit whose tokens are
    cached does): the whole process's (``peak_rss_mib``, loading the towers included)
    and the steps' own (``step_peak_rss_mib``: the peak while they ran, of everything
    resident then, the towers when kept)."""
    return _in_child(f"_memory({preset_name!r}, {batch_size}, {precision!r}, {release})")


def _memory(preset_name: str, batch_size: int, precision: str, release: bool) -> dict:
    import gc

    from skrank._encoding.backbone import forget_backbone, load_backbone

    backbone = load_backbone(BACKBONE, None, "cpu")
    batch = batch_for(backbone, batch_size)
    loaded = status_mib("VmRSS")
    adapter, optimizer, reg_weight = model_for(preset_name, backbone)
    if release:  # as fit releases them (ViT-B-32's towers are over its threshold)
        forget_backbone(backbone)
        del backbone
        gc.collect()
    step = step_fn(adapter, optimizer, reg_weight, batch, precision)
    process_peak = status_mib("VmHWM")
    before = status_mib("VmRSS")
    reset_peak_rss()
    for _ in range(3):
        step()
    return {
        "backbone_loaded_mib": loaded,
        "before_steps_mib": before,
        "step_peak_rss_mib": status_mib("VmHWM"),
        "peak_rss_mib": max(process_peak, status_mib("VmHWM")),
        "towers_released": release,
    }


def fit_memory_child(precision: str) -> dict:
    """Peak resident memory of a process that runs a whole ``fit`` of the paper's model
    (encoding included) on 64 images at 224 px, one step of batch 64."""
    return _in_child(f"_fit_memory({precision!r})")


def _fit_memory(precision: str) -> dict:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8) for _ in range(64)]
    ranker = paper_ranker(INSTRUCTION, epochs=1, precision=precision).set_params(batch_size=64)
    ranker.fit(images, rng.normal(size=64))
    return {"precision": precision, "fit_peak_rss_mib": status_mib("VmHWM")}


def paper_ranker(instruction: str, epochs: int, precision: str, seed: int = 0):
    """The paper's model on random ViT-B-32 towers, on the CPU, from one seed."""
    from skrank import CLIPRanker

    return CLIPRanker(
        instruction, backbone=BACKBONE, pretrained=None, preset="paper",
        max_epochs=epochs, precision=precision, device="cpu", random_state=seed,
    )  # fmt: skip


def measure_step(preset_name: str, backbone, batch, precision: str, repeats: int, rate) -> dict:
    """Time and FLOPs of one step of ``preset_name``'s model on ``batch``."""
    adapter, optimizer, reg_weight = model_for(preset_name, backbone)
    step = step_fn(adapter, optimizer, reg_weight, batch, precision)
    flops = step_flops(step)
    seconds = time_steps(step, repeats)
    return {
        "seconds_per_step": seconds,
        "gflop_per_step": flops / 1e9,
        "share_of_fp32_sgemm": flops / seconds / rate,
        "forward_gflop_by_piece": forward_flops(adapter, batch),
    }


def views_timing(backbone, n: int = 64, batch_size: int = 32, repeats: int = 3) -> dict:
    """Seconds to encode ``n`` images at the tower's size in batches of ``batch_size``
    (random pixels, the towers in fp32): the plain view alone, both views as two forward
    passes per batch (what ``Encoder.stream`` runs for ``augment=True``), and both
    views as one pass over the batch and its mirror stacked. Best of ``repeats``."""
    size = backbone.image_size
    pixels = torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(0))
    chunks = pixels.split(batch_size)

    def plain():
        for x in chunks:
            backbone.image_tokens(x, "fp32")

    def two_passes():
        for x in chunks:
            backbone.image_tokens(x, "fp32"), backbone.image_tokens(x.flip(-1), "fp32")

    def one_pass():
        for x in chunks:
            backbone.image_tokens(torch.cat([x, x.flip(-1)]), "fp32").split(len(x))

    out = {"n_images": n, "batch_size": batch_size, "image_size": list(size)}
    ways = {"plain": plain, "both_two_passes": two_passes, "both_one_pass": one_pass}
    for name, fn in ways.items():
        fn()
        out[f"seconds_{name}"] = timed(fn, repeats)[0]
    return out


def dropout_attention_timing(batch_size: int = 64, repeats: int = 20) -> dict:
    """Seconds of one post-LN layer's attention with dropout, forward and backward, at
    the paper's shapes (ViT-B-32's 49 tokens, width 512, 8 heads): written out, as the
    adapter computes it (its dropout mask from the fit's own generator), against
    ``scaled_dot_product_attention(dropout_p=0.1)`` (torch's fused kernel, its mask from
    the process-wide generator, which fits in threads would share). Best of ``repeats``."""
    from torch.nn import functional as F

    from skrank._model.adapter import POST_DROPOUT, _attend_with_dropout

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch_size, 8, 49, 64, generator=g).requires_grad_() for _ in range(3))
    grad = torch.randn(batch_size, 8, 49, 64, generator=g)

    def written_out():
        _attend_with_dropout(q, k, v, None, POST_DROPOUT).backward(grad)

    def fused():
        F.scaled_dot_product_attention(q, k, v, dropout_p=POST_DROPOUT).backward(grad)

    out = {"batch_size": batch_size, "shape": [batch_size, 8, 49, 64]}
    for name, fn in (("written_out", written_out), ("sdpa", fused)):
        fn()
        out[f"seconds_{name}"] = timed(fn, repeats)[0]
    return out


def _shown(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def blur_split():
    """The blur task at 224 px with its photos held out: (instruction, train, test, groups)."""
    from skrank.datasets import holdout_by_source, make_ranking_task

    task = make_ranking_task("blur", image_size=224, random_state=0)
    groups = np.asarray(task.groups)
    test = holdout_by_source(groups)
    X_train = [im for im, t in zip(task.images, test) if not t]
    X_test = [im for im, t in zip(task.images, test) if t]
    return (
        task.instruction,
        (X_train, task.target[~test]),
        (X_test, task.target[test]),
        groups[test],
    )


def fp32_spread(epochs: int) -> dict:
    """How far two fp32 fits of one seed part when only float rounding differs (1 torch
    thread against 2): the yardstick for a bf16 fit against an fp32 one."""
    from scipy.stats import spearmanr

    instruction, (X_train, y_train), (X_test, _), _ = blur_split()
    predictions = []
    threads = torch.get_num_threads()
    for n in (1, threads):
        torch.set_num_threads(n)
        ranker = paper_ranker(instruction, epochs, "fp32")
        predictions.append(ranker.fit(X_train, y_train).predict(X_test))
    torch.set_num_threads(threads)
    return {
        "epochs": epochs,
        "threads": [1, threads],
        "two_fp32_fits_srcc_1_vs_2_threads": float(spearmanr(*predictions).statistic),
    }


def ranking(epochs: int) -> dict:
    """Whether bf16 ranks as fp32 does: the paper's model on the blur task (ViT-B-32,
    random towers, 224 px, photos held out), fitted in each precision from one seed.

    Reports the Spearman correlation, on the held-out images, between the fp32
    fit's predictions made in fp32 and in bf16 (the same adapter), between the
    fp32 and the bf16 fit, and of each fit with the targets (within photo).
    """
    from scipy.stats import spearmanr

    from skrank.metrics import spearman_score

    instruction, (X_train, y_train), (X_test, y_test), test_groups = blur_split()
    out: dict = {"task": "blur", "n_train": len(X_train), "n_test": len(X_test), "epochs": epochs}
    predictions = {}
    for precision in ("fp32", "bf16"):
        ranker = paper_ranker(instruction, epochs, precision)
        t0 = time.perf_counter()
        ranker.fit(X_train, y_train)
        out[f"fit_seconds_{precision}"] = time.perf_counter() - t0
        predictions[precision] = ranker.predict(X_test)
        out[f"srcc_within_{precision}"] = float(
            spearman_score(y_test, predictions[precision], groups=test_groups)
        )
        if precision == "fp32":
            same = ranker.set_params(precision="bf16").predict(X_test)
            out["same_adapter_srcc_bf16_vs_fp32"] = float(
                spearmanr(predictions["fp32"], same).statistic
            )
    out["two_fits_srcc_bf16_vs_fp32"] = float(
        spearmanr(predictions["fp32"], predictions["bf16"]).statistic
    )
    return out


def run(args) -> dict:
    from skrank._encoding.backbone import load_backbone

    backbone = load_backbone(BACKBONE, None, "cpu")
    precisions = ["fp32"] + (["bf16"] if cpu_bf16_native() else [])
    res: dict = {
        "machine": machine_name("cpu"),
        "backbone": BACKBONE,
        "tokens": [backbone.n_image_tokens, backbone.image_dim],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "native_bf16": cpu_bf16_native(),
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "variant": args.variant,
        "commit": git_commit(),
        "rows": [],
    }
    if args.only == "fit-memory":
        res["fit_memory"] = [fit_memory_child(p) for p in precisions]
        print(json.dumps(res["fit_memory"]))
        return res
    if args.only == "fp32-spread":
        res["fp32_spread"] = fp32_spread(args.epochs)
        print(json.dumps(res["fp32_spread"]))
        return res
    if args.only == "views":
        res["views"] = views_timing(backbone)
        res["dropout_attention"] = dropout_attention_timing()
        print(json.dumps({k: res[k] for k in ("views", "dropout_attention")}))
        return res
    if args.only == "ranking":
        res["ranking"] = ranking(args.epochs)
        print(json.dumps(res["ranking"], indent=1))
        return res
    rate = sgemm_rate()
    res["sgemm_gflops"] = rate / 1e9
    print(f"fp32 sgemm: {rate / 1e9:.0f} GFLOP/s; bf16 native: {res['native_bf16']}")
    repeats = 3 if args.quick else 7
    for preset_name in ("paper", "small-data"):
        for batch_size in (32, 64):
            batch = batch_for(backbone, batch_size)
            for precision in precisions:
                row = {"preset": preset_name, "batch_size": batch_size, "precision": precision}
                if args.only != "memory":
                    row.update(measure_step(preset_name, backbone, batch, precision, repeats, rate))
                if args.only != "time" and batch_size == 64:
                    row.update(memory_child(preset_name, batch_size, precision, args.release))
                print(
                    ", ".join(
                        f"{k} {_shown(v)}" for k, v in row.items() if k != "forward_gflop_by_piece"
                    )
                )
                res["rows"].append(row)
    if args.only is None:
        adapter, optimizer, reg_weight = model_for("paper", backbone)
        step = step_fn(adapter, optimizer, reg_weight, batch_for(backbone, 64), "fp32")
        table = profile_table(step)
        (RESULTS / f"step-{res['machine']}-{args.variant}.txt").write_text(table)
        print(table)
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", default="current", help="a name for the code's state")
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--only",
        choices=["time", "memory", "ranking", "fp32-spread", "fit-memory", "views"],
        default=None,
    )
    p.add_argument("--epochs", type=int, default=8, help="epochs of the ranking fits")
    p.add_argument(
        "--release-towers",
        dest="release",
        action="store_true",
        help="memory with the frozen towers dropped before the steps, as fit drops them "
        "(skrank._estimator.fitting.release_towers)",
    )
    args = p.parse_args(argv)
    res = run(args)
    path = RESULTS / f"step-{res['machine']}.json"
    previous = json.loads(path.read_text()) if path.exists() else {"runs": []}
    runs = [r for r in previous["runs"] if r.get("variant") != args.variant] + [res]
    write_json(path, {"runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
