"""Pretraining skrank-tiny contrastively on captioned scenes: its ``"synthetic"`` weights.

No pretrained CLIP can be fetched on an offline machine, and skrank-tiny's random
towers make the instruction mean nothing. This trains the tiny towers the way CLIP
was trained (open_clip's contrastive loss over a batch of image–caption pairs) on the
generated scenes of :mod:`skrank.datasets._scenes`, on CPU, in about an hour. The
result is a small CLIP whose text means something (shapes, colours, counts, places,
backgrounds) and whose image tokens are structured; it is *not* a stand-in for a real
CLIP's scale, width or resolution.

Regenerate the shipped file with (bit for bit on the same machine kind)::

    python -m skrank._encoding.pretraining skrank/model_weights/skrank-tiny-synthetic.safetensors

Everything is seeded and the run uses one torch thread, so the float sums run in one
order; the file's SHA-256 is printed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch

from skrank._encoding.backbone import TINY  # registers skrank-tiny's config with open_clip
from skrank._encoding.weights import create_model, resolve_weights
from skrank._files import atomic_write
from skrank.datasets._scenes import make_scenes

__all__ = ["PretrainConfig", "pretrain"]


@dataclass(frozen=True)
class PretrainConfig:
    """What a pretraining run does: the defaults make the shipped weights."""

    steps: int = 8000
    batch_size: int = 256
    n_scenes: int = 200_000  # a pool drawn once; each step takes a random batch of it
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 500
    seed: int = 0
    threads: int = 1


def _normalise(images: np.ndarray, mean, std) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x - m) / s


def _schedule(step: int, cfg: PretrainConfig) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * (1 + math.cos(math.pi * progress))


def _optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW with no weight decay on gains, biases, embeddings and the logit scale, as
    CLIP's training leaves them."""
    decay, rest = [], []
    for name, p in model.named_parameters():
        plain = p.ndim < 2 or "embedding" in name or "logit_scale" in name or "positional" in name
        (rest if plain else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)


def pretrain(
    cfg: PretrainConfig = PretrainConfig(), log=print, stop_after: int | None = None
) -> tuple[dict, list]:
    """Train skrank-tiny's towers from its seeded random weights on captioned scenes.

    Returns the state dict (float32) and the mean loss of every 100 steps.
    ``stop_after`` ends the run after that many of ``cfg.steps`` (the schedule is
    still ``cfg``'s): a prefix of the full run, to check that a run repeats.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _pretrain(cfg, log, cfg.steps if stop_after is None else stop_after)
    finally:
        torch.set_num_threads(threads)


def _pretrain(cfg: PretrainConfig, log, stop_after: int) -> tuple[dict, list]:
    model = create_model(TINY, None, resolve_weights(TINY, None))
    pp = getattr(model.visual, "preprocess_cfg", {}) or {}
    mean = pp.get("mean", open_clip.OPENAI_DATASET_MEAN)
    std = pp.get("std", open_clip.OPENAI_DATASET_STD)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    tokenizer = open_clip.get_tokenizer(TINY)
    t0 = time.perf_counter()
    scenes = make_scenes(cfg.n_scenes, image_size=size, seed=cfg.seed, twins=True)
    images = np.stack(scenes.images)
    texts = tokenizer(scenes.captions)
    log(f"{cfg.n_scenes} scenes drawn in {time.perf_counter() - t0:.0f} s")
    torch.manual_seed(cfg.seed)
    model.train()
    loss_fn = open_clip.ClipLoss()
    optimizer = _optimizer(model, cfg)
    rng = np.random.default_rng([cfg.seed, 7])
    losses, running, t0 = [], 0.0, time.perf_counter()
    for step in range(min(stop_after, cfg.steps)):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * _schedule(step, cfg)
        # Whole twin pairs (rows 2k, 2k + 1): each caption's hardest negative is its
        # twin's, which only the count tells apart.
        pairs = rng.choice(len(images) // 2, cfg.batch_size // 2, replace=False)
        rows = np.concatenate([2 * pairs, 2 * pairs + 1])
        image_features, text_features, logit_scale = model(
            _normalise(images[rows], mean, std), texts[rows]
        )[:3]
        loss = loss_fn(image_features, text_features, logit_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        running += loss.item()
        if (step + 1) % 100 == 0:
            losses.append(running / 100)
            running = 0.0
            elapsed = time.perf_counter() - t0
            log(f"step {step + 1}/{cfg.steps}  loss {losses[-1]:.3f}  {elapsed:.0f} s")
    model.eval()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, losses


def save_half(state: dict, path: str | Path, metadata: dict) -> str:
    """Write ``state`` in float16 as safetensors (atomically, with the umask's mode, as
    every file skrank writes); returns the file's SHA-256."""
    from safetensors.torch import save

    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    data = save(half, metadata={k: str(v) for k, v in metadata.items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return hashlib.sha256(data).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="the .safetensors file to write")
    parser.add_argument("--steps", type=int, default=PretrainConfig.steps)
    parser.add_argument("--n-scenes", type=int, default=PretrainConfig.n_scenes)
    parser.add_argument("--losses", help="also write the loss curve, as JSON, here")
    parser.add_argument(
        "--stop-after", type=int, help="end after this many steps of the same schedule"
    )
    args = parser.parse_args(argv)
    cfg = PretrainConfig(steps=args.steps, n_scenes=args.n_scenes)
    log = lambda line: print(line, flush=True)  # noqa: E731
    state, losses = pretrain(cfg, log, args.stop_after)
    sha = save_half(state, args.out, {"config": json.dumps(asdict(cfg))})
    if args.losses:
        Path(args.losses).write_text(json.dumps({"config": asdict(cfg), "loss_every_100": losses}))
    print(f"wrote {args.out} ({Path(args.out).stat().st_size / 1e6:.1f} MB), sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
