"""Does skrank-tiny's ``"synthetic"`` pretraining behave like CLIP? Measured against the
random tower, side by side, on captioned scenes the pretraining never drew.

- Retrieval: each image's own caption among ``n`` captions (R@1, chance 1/n), and each
  caption's image.
- Zero-shot concepts the captions teach: the background photo ("a photo of a cat",
  one of 19), and ranking by a taught count ("six circles" against "one circle").
- Zero-shot on held-out targets the captions never name: blur and JPEG (a positive
  against a negative prompt, as CLIP-IQA does) and the triangle count. Near chance is
  what a CLIP that was not taught them should give.
- A linear probe (ridge, folds by scene) on the pooled image embedding, for the
  held-out targets and a taught one: pretrained structure should make it better than
  on the random tower.

    python -m benchmarks.tiny_clip            # writes results/tiny-clip-likeness.{json,md}
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupKFold, cross_val_predict

from benchmarks import _common  # noqa: F401  (offline; before open_clip)
from benchmarks._common import RESULTS, embeddings, git_commit, write_json
from skrank import CLIPZeroShotRanker
from skrank._encoding.backbone import load_backbone
from skrank.datasets._scenes import PHOTO_WORDS, degrade, make_scenes

EVAL_SEED = 9_999  # the pretraining draws seed 0: these scenes are other ones
LEVELS = np.linspace(0.0, 1.0, 6)
PROMPTS = {  # held-out targets: (positive, negative), words the captions never use
    "blur": ("a blurry photo.", "a sharp photo."),
    "jpeg": ("a heavily compressed jpeg photo.", "a high quality photo."),
}


def _normed(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(x.float(), dim=-1).numpy()


def embed_images(backbone, images) -> np.ndarray:
    """Unit pooled image embeddings, as every benchmark computes them
    (``_common.embeddings``: ``CLIPEmbedder``)."""
    return _normed(torch.from_numpy(embeddings(backbone, images)))


def zero_shot(backbone, img: np.ndarray, positive: str, negative: str) -> np.ndarray:
    """``CLIPZeroShotRanker``'s score of the unit embeddings ``img`` for the pair."""
    ranker = CLIPZeroShotRanker(
        prompts=(positive, negative),
        backbone=backbone.name,
        pretrained=backbone.pretrained,
        device=str(backbone.device),
    )
    return img @ ranker.fit().direction_


def embed_texts(backbone, texts) -> np.ndarray:
    return _normed(backbone.text_embeddings(list(texts), "fp32"))


def retrieval(backbone, scenes, n: int) -> dict:
    """R@1 image→caption and caption→image among the first ``n`` scenes."""
    img = embed_images(backbone, scenes.images[:n])
    txt = embed_texts(backbone, scenes.captions[:n])
    sim = img @ txt.T
    return {
        "n": n,
        "chance": 1 / n,
        "image_to_caption_r1": float(np.mean(sim.argmax(1) == np.arange(n))),
        "caption_to_image_r1": float(np.mean(sim.argmax(0) == np.arange(n))),
    }


def background(backbone, scenes) -> dict:
    """Zero-shot: which of the photos is the background, among their captions' words."""
    words = list(PHOTO_WORDS.values())
    rows = [i for i, b in enumerate(scenes.background) if b.startswith("a photo of ")]
    truth = np.array([words.index(scenes.background[i][len("a photo of ") :]) for i in rows])
    img = embed_images(backbone, [scenes.images[i] for i in rows])
    txt = embed_texts(backbone, [f"a photo of {w}." for w in words])
    accuracy = float(np.mean((img @ txt.T).argmax(1) == truth))
    return {"n": len(rows), "accuracy": accuracy, "chance": 1 / len(words)}


def count_ranking(backbone, img: np.ndarray, counts: np.ndarray, kind: str) -> float:
    """Spearman of sim("six …") − sim("one …") over the unit embeddings ``img`` of scenes
    with ``counts`` of ``kind`` drawn."""
    return float(spearmanr(zero_shot(backbone, img, f"six {kind}s.", f"one {kind}."), counts)[0])


def graded(scenes, kind: str, n: int):
    """Each of ``n`` clean scenes at every level of ``kind``: images, levels, scene ids."""
    rng = np.random.default_rng([EVAL_SEED, 1])
    images, levels, groups = [], [], []
    for s in range(n):
        for level in LEVELS:
            images.append(degrade(scenes.images[s], kind, float(level), rng))
            levels.append(level)
            groups.append(s)
    return images, np.array(levels), np.array(groups)


def probe(features, y, groups) -> float:
    """Pooled Spearman of a ridge's out-of-fold predictions (5 folds by scene)."""
    ridge = RidgeCV(alphas=np.logspace(-3, 3, 13))
    pred = cross_val_predict(ridge, features, y, groups=groups, cv=GroupKFold(5))
    return float(spearmanr(pred, y)[0])


def held_out(backbone, clean, counted, n: int) -> dict:
    out = {}
    for kind, (pos, neg) in PROMPTS.items():
        images, levels, groups = graded(clean, kind, n)
        img = embed_images(backbone, images)
        out[kind] = {
            "zero_shot_spearman": float(spearmanr(zero_shot(backbone, img, pos, neg), levels)[0]),
            "probe_spearman": probe(img, levels, groups),
        }
    for kind, name in (("triangle", "triangle count"), ("circle", "circle count (taught)")):
        rows = np.flatnonzero(counted.counts[kind] > 0)
        img = embed_images(backbone, [counted.images[i] for i in rows])  # once, for both
        y = counted.counts[kind][rows]
        out[name] = {
            "zero_shot_spearman": count_ranking(backbone, img, y, kind),
            "probe_spearman": probe(img, y, np.arange(len(rows))),
        }
    return out


def measure(pretrained, n_retrieval=1000, n_graded=200, n_counted=3000) -> dict:
    backbone = load_backbone("skrank-tiny", pretrained)
    scenes = make_scenes(max(100, n_retrieval, n_counted), seed=EVAL_SEED)
    clean = make_scenes(n_graded, seed=EVAL_SEED + 1, degraded=False)
    return {
        "weights_identity": backbone.weights_identity,
        "retrieval": [retrieval(backbone, scenes, m) for m in sorted({100, n_retrieval})],
        "background": background(backbone, scenes),
        "targets": held_out(backbone, clean, scenes, n_graded),
    }


def table(results: dict) -> str:
    names = list(results)
    lines = ["| measure | chance | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    first = results[names[0]]
    for k, r in enumerate(first["retrieval"]):
        for key in ("image_to_caption_r1", "caption_to_image_r1"):
            cells = [f"{results[n]['retrieval'][k][key]:.3f}" for n in names]
            head = f"| {key} among {r['n']} | {r['chance']:.3f} | "
            lines.append(head + " | ".join(cells) + " |")
    cells = [f"{results[n]['background']['accuracy']:.3f}" for n in names]
    chance = first["background"]["chance"]
    lines.append(f"| zero-shot background (of 19) | {chance:.3f} | " + " | ".join(cells) + " |")
    for target in first["targets"]:
        for key in ("zero_shot_spearman", "probe_spearman"):
            cells = [f"{results[n]['targets'][target][key]:.3f}" for n in names]
            zero = "0" if key.startswith("zero") else "-"
            lines.append(f"| {target}: {key} | {zero} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="synthetic", help="pretrained= of the tower measured")
    parser.add_argument("--out", default="tiny-clip-likeness")
    parser.add_argument("--quick", action="store_true", help="fewer scenes: a pilot's check")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    sizes = dict(n_retrieval=200, n_graded=40, n_counted=600) if args.quick else {}
    results = {"random tower": measure(None, **sizes), args.weights: measure(args.weights, **sizes)}
    text = table(results)
    print(text)
    if not args.quick:
        write_json(RESULTS / f"{args.out}.json", {"commit": git_commit(), "results": results})
        (RESULTS / f"{args.out}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
