"""Two hand-written numeric kernels against the libraries: Kendall's tau-b and the probe's ridge.

Asked: do ``scipy.stats.kendalltau`` and ``sklearn.linear_model.RidgeCV`` give the values
of skrank's own tau-b (``metrics._kernels``) and closed-form ridge (``probe.fit_ridge``)?
Found: both do (tau to 2.2e-16; ridge coefficients to 6e-13); RidgeCV is 6-7x slower.
Changed: ``skrank.metrics`` computes Kendall with scipy; the probe keeps ``fit_ridge``.

**Kendall.** skrank's tau-b counts pairs with :func:`skrank.metrics._kernels._pair_counts`
(a merge-sort inversion count, which ``pairwise_accuracy`` shares) and combines them
as ``(concordant - discordant) / sqrt((pairs - tied_true) * (pairs - tied_pred))``:
:func:`hand_tau_b` below is that formula, so the comparison still runs once the
metric itself goes through scipy. Each case draws 20 seeds of ``y_true`` and
``y_pred`` (continuous, few or many ties on either side, all ties on one side,
n = 2, 3, 10, 1,000, 100,000, huge and tiny magnitudes) and records the largest
difference from scipy's ``kendalltau(...).statistic`` (variant "b", the default),
whether both are NaN together, and any warning scipy gives. Speed: best of 5 calls
per size (n = 8, a typical group; 1,000; 100,000), continuous and with many ties.

**Ridge.** ``fit_ridge`` picks the penalty among ``probe.ALPHAS`` by exact
leave-one-out error (one eigendecomposition of the smaller Gram matrix) and solves
at it; ``RidgeCV(alphas=ALPHAS)`` does the same (its ``gcv_mode="auto"`` picks the
same Gram matrix: rows when n <= F, features otherwise), with ``sample_weight`` =
the probe's weights scaled to sum to n (what ``fit_ridge``'s normalisation
amounts to). Features: standardised low-rank-plus-noise features of the probe's
widths (F = 2 * d: 128 for ``skrank-tiny``, 1,024 for ViT-B, 2,048 at the largest
with ``--large``), and the real token statistics of ``skrank-tiny`` on the blur
task. Recorded: the penalties chosen, the largest coefficient difference relative
to the largest coefficient, the intercepts' difference, and the fit times.

Conclusion (``results/experiment-library-kernels.json``, commit 8d56f65, 2 shared
CPU cores, one thread): the two tau-b agree to 2.2e-16 on every case, NaN on the
same constant inputs, and scipy warned of nothing; scipy took 0.04 s against 0.13 s
(continuous) and 0.007 s against 0.09 s (many ties) at n = 100,000, 0.27 ms
against 0.55 ms at 1,000, and 0.2 ms against 0.1-0.16 ms per call at n = 8 (a
group of a few hundred calls differs by milliseconds). ``skrank.metrics`` now
computes Kendall with scipy (``_pair_counts`` stays: ``pairwise_accuracy`` uses
it). RidgeCV chose the same penalty in all 13 fits, with coefficients equal to
6e-13 relative on the synthetic features and 4e-10 on skrank-tiny's tokens (an
ill-conditioned Gram matrix), but took 6-7 times as long from 2,000 rows:
3.4 s against 0.54 s at 2,000 x 1,024, 30 s against 4.6 s at 20,000 x 1,024,
99 s against 14 s at 20,000 x 2,048. Its "cov" mode recomputes the hat matrix's
diagonal in O(n F^2) for every penalty, where ``fit_ridge`` projects once and
pays O(n F) per penalty; so the probe keeps ``fit_ridge`` (its comment says so).
The features are float64 numpy arrays by then (``fit_probe``), so a torch solve
would buy nothing on the CPU that one eigendecomposition does not already give.

Run from the repository root, on a clean tree (the results record the commit)::

    OMP_NUM_THREADS=1 python -m benchmarks.experiments.library_kernels [--large]

(writes ``benchmarks/results/experiment-library-kernels.json``).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from benchmarks._common import RESULTS, git_commit, timed, write_json

SEEDS = 20


def hand_tau_b(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """skrank's own tau-b (``metrics._kernels._kendall`` before it used scipy)."""
    from skrank.metrics._kernels import _is_constant, _pair_counts

    if _is_constant(y_true) or _is_constant(y_pred):
        return float("nan")
    n_pairs, tied_true, tied_pred, tied_both, discordant = _pair_counts(y_true, y_pred)
    concordant = n_pairs - tied_true - tied_pred + tied_both - discordant
    denominator = np.sqrt(float(n_pairs - tied_true) * float(n_pairs - tied_pred))
    return float(np.clip((concordant - discordant) / denominator, -1.0, 1.0))


def scipy_tau_b(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, list[str]]:
    """scipy's tau-b and the warnings it gave."""
    from scipy.stats import kendalltau

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        value = float(kendalltau(y_true, y_pred).statistic)
    return value, [str(w.message) for w in record]


# Each case: n and a draw of (y_true, y_pred) from a Generator.
def _continuous(rng, n):
    y = rng.normal(size=n)
    return y, y + rng.normal(size=n)


def _few_ties(rng, n):
    return np.round(rng.normal(size=n), 1), np.round(rng.normal(size=n), 1)


def _many_ties(rng, n):
    y = rng.integers(0, 5, n).astype(float)
    return y, y + rng.integers(-2, 3, n)


def _ties_in_true_only(rng, n):
    return rng.integers(0, 3, n).astype(float), rng.normal(size=n)


def _ties_in_pred_only(rng, n):
    return rng.normal(size=n), rng.integers(0, 3, n).astype(float)


def _all_tied_true(rng, n):
    return np.full(n, 3.0), rng.normal(size=n)


def _all_tied_pred(rng, n):
    return rng.normal(size=n), np.zeros(n)


def _all_but_one_tied(rng, n):
    y = np.zeros(n)
    y[rng.integers(n)] = 1.0
    return y, rng.integers(0, 2, n).astype(float)


def _huge_and_tiny(rng, n):
    return rng.normal(size=n) * 1e300, rng.normal(size=n) * 1e-300


def _signed_zeros(rng, n):
    return rng.choice([-0.0, 0.0, 1.0], n), rng.normal(size=n)


KENDALL_CASES = {
    "continuous": (_continuous, (2, 3, 10, 1000, 100_000)),
    "few ties": (_few_ties, (10, 1000, 100_000)),
    "many ties": (_many_ties, (2, 3, 10, 1000, 100_000)),
    "ties in y_true only": (_ties_in_true_only, (3, 10, 1000)),
    "ties in y_pred only": (_ties_in_pred_only, (3, 10, 1000)),
    "all tied in y_true": (_all_tied_true, (2, 10, 1000)),
    "all tied in y_pred": (_all_tied_pred, (2, 10, 1000)),
    "all but one tied": (_all_but_one_tied, (2, 10, 1000)),
    "huge and tiny values": (_huge_and_tiny, (10, 1000)),
    "-0.0 and 0.0": (_signed_zeros, (10, 1000)),
}


def kendall_rows() -> list[dict]:
    rows = []
    for case, (draw, sizes) in KENDALL_CASES.items():
        for n in sizes:
            diff, same_nan, n_nan, messages = 0.0, True, 0, set()
            for seed in range(SEEDS if n < 100_000 else 3):
                y_true, y_pred = draw(np.random.default_rng(seed), n)
                ours = hand_tau_b(y_true, y_pred)
                theirs, said = scipy_tau_b(y_true, y_pred)
                messages.update(said)
                if np.isnan(ours) or np.isnan(theirs):
                    same_nan &= bool(np.isnan(ours) and np.isnan(theirs))
                    n_nan += int(np.isnan(ours))
                else:
                    diff = max(diff, abs(ours - theirs))
            rows.append(
                {
                    "case": case,
                    "n": n,
                    "max_abs_diff": diff,
                    "nan_together": same_nan,
                    "n_nan": n_nan,
                    "scipy_warnings": sorted(messages),
                }
            )
            print(rows[-1], flush=True)
    return rows


def kendall_speed() -> list[dict]:
    from scipy.stats import kendalltau

    rows = []
    for n in (8, 1000, 100_000):
        for case in ("continuous", "many ties"):
            y_true, y_pred = KENDALL_CASES[case][0](np.random.default_rng(0), n)
            ours, _ = timed(lambda a=y_true, b=y_pred: hand_tau_b(a, b), repeats=5)
            theirs, _ = timed(lambda a=y_true, b=y_pred: kendalltau(a, b).statistic, repeats=5)
            rows.append({"case": case, "n": n, "hand_seconds": ours, "scipy_seconds": theirs})
            print(rows[-1], flush=True)
    return rows


# --------------------------------------------------------------------------- ridge


def low_rank_features(rng, n: int, width: int, rank: int = 32):
    """Standardised features of ``rank`` latent factors plus noise, and a target on two."""
    latent = rng.normal(size=(n, rank))
    X = latent @ rng.normal(size=(rank, width)) + 0.5 * rng.normal(size=(n, width))
    y = latent[:, 0] + 0.3 * latent[:, 1] ** 2 + rng.normal(size=n)
    return (X - X.mean(axis=0)) / X.std(axis=0), y


def tiny_token_features():
    """skrank-tiny's token statistics (F = 128) of the blur task's 176 images, standardised."""
    from benchmarks._common import frozen_tokens
    from skrank._encoding.backbone import load_backbone
    from skrank._model.probe import token_statistics
    from skrank.datasets import make_ranking_task

    task = make_ranking_task("blur", image_size=64, random_state=0)
    tokens = frozen_tokens(load_backbone("skrank-tiny", None, "cpu"), task.images)
    X = token_statistics(tokens).double().numpy()
    return (X - X.mean(axis=0)) / X.std(axis=0), np.asarray(task.target, dtype=float)


def compare_ridge(X, y, weight, repeats) -> dict:
    from sklearn.linear_model import RidgeCV

    from skrank._model.probe import ALPHAS, fit_ridge

    ours_s, (coef, intercept, alpha) = timed(lambda: fit_ridge(X, y, weight), repeats)
    sw = None if weight is None else weight * len(y) / weight.sum()
    theirs_s, model = timed(lambda: RidgeCV(alphas=ALPHAS).fit(X, y, sample_weight=sw), repeats)
    return {
        "n": X.shape[0],
        "width": X.shape[1],
        "weighted": weight is not None,
        "alpha": alpha,
        "ridgecv_alpha": float(model.alpha_),
        "coef_max_rel_diff": float(np.abs(coef - model.coef_).max() / np.abs(coef).max()),
        "intercept_abs_diff": float(abs(intercept - model.intercept_)),
        "fit_ridge_seconds": ours_s,
        "ridgecv_seconds": theirs_s,
    }


def ridge_rows(large: bool) -> list[dict]:
    sizes = [(64, 128), (300, 128), (500, 1024), (2000, 1024), (5000, 1024), (20000, 1024)]
    if large:
        sizes.append((20000, 2048))
    rows = []
    X, y = tiny_token_features()
    for weighted in (False, True):
        rng = np.random.default_rng(1)
        weight = rng.uniform(0.5, 2.0, len(y)) if weighted else None
        rows.append({"features": "skrank-tiny blur", **compare_ridge(X, y, weight, 3)})
        print(rows[-1], flush=True)
    for n, width in sizes:
        for weighted in (False, True) if n <= 2000 else (False,):
            rng = np.random.default_rng(n + width)
            X, y = low_rank_features(rng, n, width)
            weight = rng.uniform(0.5, 2.0, n) if weighted else None
            row = compare_ridge(X, y, weight, 3 if n <= 2000 else 1)
            rows.append({"features": "low rank", **row})
            print(rows[-1], flush=True)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--large", action="store_true", help="also n = 20,000 at width 2,048")
    args = p.parse_args(argv)
    commit = git_commit()
    if "+diff" in commit:  # a result must name the code that made it
        raise SystemExit(f"uncommitted changes ({commit}): commit them, then run this")
    t0 = time.perf_counter()
    out = {
        "commit": commit,
        "kendall": kendall_rows(),
        "kendall_speed": kendall_speed(),
        "ridge": ridge_rows(args.large),
    }
    out["seconds"] = time.perf_counter() - t0
    write_json(RESULTS / "experiment-library-kernels.json", out, indent=1)


if __name__ == "__main__":
    main()
