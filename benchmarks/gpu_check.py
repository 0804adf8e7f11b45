"""GPU check, prepared to run in one short session on a CUDA machine (< 5 minutes).

    python benchmarks/gpu_check.py

1. Fits skrank-tiny and a random ViT-B-16 on CUDA (bf16 autocast), checks the
   losses are finite and that the model learns (held-out within-photo Spearman).
2. Pickles the CUDA-fitted ranker and reloads it in a CPU-only subprocess
   (``CUDA_VISIBLE_DEVICES=""``): predictions must match the GPU's closely.
3. Runs ``bench_speed.py --backbone ViT-B-16 --batch-size 64 --device cuda``.

Writes ``benchmarks/results/gpu-check-<gpu>.json`` with everything it printed.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", message=".*random.*weights")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).parent


def fit_on_cuda(backbone: str, size: int) -> tuple[dict, object, list]:
    from skrank import CLIPRanker
    from skrank.datasets import holdout_by_source, make_ranking_task
    from skrank.metrics import spearman_score

    task = make_ranking_task("blur", image_size=size, random_state=0)
    groups = np.asarray(task.groups)
    test = holdout_by_source(groups)
    X_train = [x for x, t in zip(task.images, test) if not t]
    X_test = [x for x, t in zip(task.images, test) if t]
    ranker = CLIPRanker(
        task.instruction,
        backbone=backbone,
        pretrained=None,
        device="cuda",
        random_state=0,
        lr=1e-4 if backbone != "skrank-tiny" else 5e-5,
    )
    t0 = time.perf_counter()
    ranker.fit(X_train, task.target[~test])
    seconds = time.perf_counter() - t0
    pred = ranker.predict(X_test)
    losses = [h["loss"] for h in ranker.history_]
    return (
        {
            "backbone": backbone,
            "fit_seconds": seconds,
            "epochs": ranker.n_iter_,
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "all_losses_finite": bool(np.isfinite(losses).all()),
            "within_photo_srcc": spearman_score(task.target[test], pred, groups=groups[test]),
            "pooled_srcc": spearman_score(task.target[test], pred),
        },
        ranker,
        X_test,
    )


def main() -> None:
    assert torch.cuda.is_available(), "this check needs a CUDA device"
    gpu = torch.cuda.get_device_name(0)
    report: dict = {"gpu": gpu, "torch": torch.__version__}
    print(f"GPU: {gpu}, torch {torch.__version__}")
    for backbone, size in (("skrank-tiny", 64), ("ViT-B-16", 224)):
        res, ranker, X_test = fit_on_cuda(backbone, size)
        report[f"fit_{backbone}"] = res
        print(json.dumps(res))
    gpu_pred = ranker.predict(X_test[:16])
    with tempfile.TemporaryDirectory() as tmp:
        model, images, out = (Path(tmp) / n for n in ("r.pkl", "x.npy", "p.npy"))
        model.write_bytes(pickle.dumps(ranker))
        np.save(images, np.stack(X_test[:16]))
        code = (
            "import pickle, numpy as np, torch; assert not torch.cuda.is_available();"
            f"r = pickle.loads(open({str(model)!r}, 'rb').read());"
            f"np.save({str(out)!r}, r.predict(list(np.load({str(images)!r}))))"
        )
        env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
        subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
        cpu_pred = np.load(out)
    diff = float(np.max(np.abs(cpu_pred - gpu_pred)))
    # The GPU ran the backbone and adapter under bf16 autocast; the CPU in fp32.
    report["pickle_cuda_to_cpu"] = {"max_abs_diff": diff, "scale": float(np.std(gpu_pred))}
    print(
        f"pickle fitted on CUDA, predicted on CPU: max |diff| {diff:.4g} "
        f"(prediction std {np.std(gpu_pred):.3g})"
    )
    bench = subprocess.run(
        [
            sys.executable,
            str(HERE / "bench_speed.py"),
            "--backbone",
            "ViT-B-16",
            "--batch-size",
            "64",
            "--device",
            "cuda",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    print(bench.stdout)
    report["bench_speed_stdout"] = bench.stdout
    report["bench_speed_stderr_tail"] = bench.stderr[-2000:]
    out = HERE / "results" / f"gpu-check-{gpu.replace(' ', '-')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
