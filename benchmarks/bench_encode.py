"""What one CPU thread costs per image: the frozen image tower, the adapter, decoding.

Usage (from the repository root)::

    python -m benchmarks.bench_encode                       # ViT-B-32, ViT-B-16, ConvNeXt-L
    python -m benchmarks.bench_encode --backbones ViT-B-16  # one backbone

Runs with one torch thread (``torch.set_num_threads(1)``), random weights (speed
does not depend on the weights) and writes ``results/encode-<machine>-1thread.json``.
For each backbone: the image tower alone on already-decoded pixels (what
``skrank._encoding.backbone.Backbone.image_tokens`` does), one forward pass of the
default-size adapter on those tokens (what ``predict`` adds to encoding), and the
ratio of the two. Separately: decoding and resizing one JPEG through
``skrank._encoding.images`` (scikit-learn's ``china.jpg``, 640x427, a real photograph).
Every time is the best of ``--repeats`` runs. The machine's load average is
recorded beside the figures: on a shared machine, absolute rates are only as
good as the machine was idle.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from benchmarks._common import RESULTS, git_commit, machine_name, timed, write_json

DEFAULT_BACKBONES = ("ViT-B-32", "ViT-B-16", "convnext_large_d_320")


def measure_backbone(name: str, n: int, repeats: int) -> dict:
    from skrank._encoding.backbone import load_backbone
    from skrank._model.adapter import AdapterConfig, RankingAdapter

    t0 = time.perf_counter()
    backbone = load_backbone(name, None, "cpu")
    build_s = time.perf_counter() - t0
    torch.manual_seed(0)
    pixels = torch.randn(n, 3, *backbone.image_size)
    backbone.image_tokens(pixels[:1])  # warm-up
    tower_s, _ = timed(lambda: backbone.image_tokens(pixels), repeats)
    tokens = backbone.image_tokens(pixels)

    adapter = RankingAdapter(
        AdapterConfig(backbone.image_dim, backbone.text_dim, d_model=backbone.embed_dim)
    ).eval()
    text, valid = backbone.text_tokens(["Sort the images by how blurry they are."])
    with torch.no_grad():
        adapter(tokens[:1], text, valid)  # warm-up
        adapter_s, _ = timed(lambda: adapter(tokens, text, valid), repeats)
    return {
        "backbone": name,
        "image_size": list(backbone.image_size),
        "image_tokens": f"{backbone.n_image_tokens} x {backbone.image_dim}",
        "n_images": n,
        "build_seconds": build_s,
        "tower_images_per_s": n / tower_s,
        "tower_seconds_per_image": tower_s / n,
        "adapter_seconds_per_image": adapter_s / n,
        "adapter_to_tower": adapter_s / tower_s,
    }


def measure_decode(n: int, repeats: int, size: int = 224) -> dict:
    import sklearn
    from PIL import Image

    from skrank._encoding.images import Preprocessor, iter_pixel_batches

    path = Path(sklearn.__file__).parent / "datasets" / "images" / "china.jpg"
    with Image.open(path) as im:
        width, height = im.size
    pre = Preprocessor((size, size), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    items = [str(path)] * n

    def decode_all():
        for _ in iter_pixel_batches(items, pre, 32):
            pass

    decode_all()  # warm the file into the page cache
    t, _ = timed(decode_all, repeats)
    return {
        "file": "sklearn/datasets/images/china.jpg",
        "width": width,
        "height": height,
        "bytes": path.stat().st_size,
        "resized_to": [size, size],
        "n_images": n,
        "images_per_s": n / t,
        "seconds_per_image": t / n,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backbones", nargs="+", default=list(DEFAULT_BACKBONES))
    p.add_argument("--images", type=int, default=8, help="images per timed tower pass")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--decode-images", type=int, default=200)
    p.add_argument(
        "--out", default=None, help="JSON path (default: results/encode-<machine>-1thread.json)"
    )
    args = p.parse_args(argv)

    torch.set_num_threads(1)
    machine = machine_name("cpu")
    res: dict = {
        "machine": machine,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "commit": git_commit(),
        "load_average_before": list(os.getloadavg()),
        "backbones": [],
    }
    for name in args.backbones:
        n = max(2, args.images // 2) if name.startswith("convnext") else args.images
        r = measure_backbone(name, n, args.repeats)
        res["backbones"].append(r)
        print(
            f"{name} ({r['image_size'][0]} px): tower {r['tower_images_per_s']:.2f} images/s, "
            f"adapter {r['adapter_to_tower']:.3f} x the tower's time"
        )
    d = measure_decode(args.decode_images, args.repeats)
    res["decode"] = d
    print(
        f"decode + resize {d['width']}x{d['height']} JPEG ({d['bytes'] // 1024} KiB) to 224 px: "
        f"{d['images_per_s']:.0f} images/s"
    )
    res["load_average_after"] = list(os.getloadavg())
    print(
        f"load average before/after: {res['load_average_before'][0]:.2f} / "
        f"{res['load_average_after'][0]:.2f}"
    )
    out = Path(args.out) if args.out else RESULTS / f"encode-{machine}-1thread.json"
    write_json(out, res)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
