"""The linear probe: its closed-form ridge, the model it starts training from, and its files."""

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.linear_model import Ridge, RidgeCV

from skrank import load, save
from skrank._model.adapter import AdapterConfig, RankingAdapter
from skrank._model.evaluation import standardised_scores
from skrank._model.probe import (
    ALPHAS,
    WEIGHTS,
    LinearProbe,
    blend,
    choose_weight,
    fit_ridge,
    token_statistics,
)
from skrank.metrics import spearman_score
from tests.helpers import INSTRUCTION as INSTR
from tests.helpers import as_format_1, parts, tiny_ranker


@pytest.fixture(scope="module")
def data(brightness_task):
    d = brightness_task
    return d["X_train"][:32], d["y_train"][:32], d["X_test"][:8]


# --- the closed form ---------------------------------------------------------------------


@pytest.mark.parametrize("n, f", [(12, 40), (80, 6)])  # kernel and primal forms
def test_fit_ridge_is_sklearns_ridge_with_the_leave_one_out_penalty(n, f):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, f))
    y = X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.standard_normal(n) + 3.0
    coef, intercept, alpha = fit_ridge(X, y)
    reference = Ridge(alpha=alpha).fit(X, y)
    np.testing.assert_allclose(coef, reference.coef_, atol=1e-8)
    np.testing.assert_allclose(intercept, reference.intercept_, atol=1e-8)

    # The penalty is the one with the least exact leave-one-out error (refit per row).
    def loo(a):
        errors = [
            y[i] - Ridge(alpha=a).fit(np.delete(X, i, 0), np.delete(y, i)).predict(X[i : i + 1])[0]
            for i in range(n)
        ]
        return np.mean(np.square(errors))

    exact = [loo(a) for a in ALPHAS]
    assert alpha == ALPHAS[int(np.argmin(exact))]


def test_fit_ridge_chooses_the_penalty_ridgecv_chooses():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((60, 20))
    y = X @ rng.standard_normal(20) + rng.standard_normal(60)
    _, _, alpha = fit_ridge(X, y)
    assert alpha == RidgeCV(alphas=ALPHAS).fit(X, y).alpha_
    w = rng.uniform(0.5, 2.0, 60)
    _, _, alpha = fit_ridge(X, y, w)
    assert alpha == RidgeCV(alphas=ALPHAS).fit(X, y, sample_weight=w * 60 / w.sum()).alpha_


def test_fit_ridge_weights_rows_as_ridge_does():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((30, 5)), rng.standard_normal(30)
    w = rng.uniform(0.2, 3.0, 30)
    coef, intercept, alpha = fit_ridge(X, y, w)
    # fit_ridge normalises the weights to mean 1: the same penalty for Ridge.
    w = w * len(w) / w.sum()
    reference = Ridge(alpha=alpha).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(coef, reference.coef_, atol=1e-8)
    np.testing.assert_allclose(intercept, reference.intercept_, atol=1e-8)


def test_fit_ridge_on_one_row_or_constant_features_is_finite():
    coef, intercept, _ = fit_ridge(np.ones((1, 3)), np.array([2.0]))
    assert (coef == 0).all() and intercept == 2.0
    coef, intercept, _ = fit_ridge(np.ones((5, 3)), np.arange(5.0))
    assert np.isfinite(coef).all() and intercept == pytest.approx(2.0)


def test_token_statistics_are_the_mean_and_spread_over_tokens():
    tokens = torch.randn(3, 7, 4)
    stats = token_statistics(tokens)
    torch.testing.assert_close(stats[:, :4], tokens.mean(1))
    torch.testing.assert_close(stats[:, 4:], tokens.std(1, correction=0))


# --- the blend a fit chooses ------------------------------------------------------------


def capture_fit(monkeypatch):
    """Record the adapter, TrainData and TrainConfig a fit trains with, after training."""
    import skrank._estimator.fitting

    seen = {}
    real = skrank._estimator.fitting.weigh_probe

    def spy(adapter, data, cfg):
        seen.update(before=copy.deepcopy(adapter), data=data, cfg=cfg)
        seen["m"] = real(adapter, data, cfg)
        return seen["m"]

    monkeypatch.setattr(skrank._estimator.fitting, "weigh_probe", spy)
    return seen


def test_the_weight_is_chosen_on_held_out_groups_and_the_ridge_refitted_on_all(
    brightness_task, monkeypatch
):
    X, y, groups = (
        brightness_task["X_train"],
        brightness_task["y_train"],
        brightness_task["g_train"],
    )
    n = len(X)
    seen = capture_fit(monkeypatch)
    ranker = tiny_ranker(probe="ridge", max_epochs=2, validation_fraction=0.15).fit(
        X, y, groups=groups
    )
    d = seen["data"]
    assert d.holdout and not set(d.val_idx) & set(d.train_idx)  # never trained on
    held = set(groups[d.val_idx])
    assert len(held) >= 2 and not held & set(groups[d.train_idx])  # whole groups
    assert ranker.probe_weight_ == seen["m"] and ranker.probe_weight_ in WEIGHTS
    # The chosen weight is the best blend of the two parts on those rows.
    before = seen["before"]
    head, ridge = standardised_scores(before, d, seen["cfg"], d.val_idx, parts=True)
    val_groups = groups[d.val_idx]
    scores = [
        spearman_score(d.y_std[d.val_idx], (1 - m) * head + m * ridge, groups=val_groups)
        for m in WEIGHTS
    ]
    assert max(scores) == pytest.approx(scores[WEIGHTS.index(ranker.probe_weight_)])
    # The ridge was then refitted on all rows: what a ridge on them predicts.
    tokens = d.source.tokens(np.arange(n), np.zeros(n, bool), "cpu")
    feats = token_statistics(tokens).double().numpy()
    center, scale = feats.mean(0), feats.std(0)
    ridge = RidgeCV(alphas=ALPHAS).fit((feats - center) / scale, d.y_std)
    with torch.no_grad():
        fitted = ranker.adapter_.probe.ridge(tokens).numpy()
    np.testing.assert_allclose(fitted, ridge.predict((feats - center) / scale), atol=1e-4)
    # The score is (1 - m) * head + m * ridge.
    m = ranker.probe_weight_
    text, valid = d.text.get(0)
    with torch.no_grad():
        blended, _ = ranker.adapter_(tokens, text, valid)
        head_before, _ = before(tokens, text, valid)  # gate 0: the head alone
    torch.testing.assert_close(
        blended,
        (1 - m) * head_before + m * torch.as_tensor(fitted, dtype=torch.float32),
        atol=1e-5,
        rtol=1e-5,
    )


def test_choose_weight_picks_the_better_part_and_the_adapter_on_ties():
    rng = np.random.default_rng(0)
    y = rng.standard_normal(40)
    good, bad = y + 0.1 * rng.standard_normal(40), rng.standard_normal(40)
    groups = np.zeros(40, int)
    assert choose_weight(good, bad, y, groups) == 0.0
    assert choose_weight(bad, good, y, groups) == 1.0
    assert choose_weight(good, good, y, groups) == 0.0  # ties: the adapter
    assert choose_weight(np.zeros(40), np.zeros(40), y, groups) == 0.0  # no correlation


def test_x_val_chooses_the_weight_and_the_ridge_keeps_to_the_training_rows(
    brightness_task, monkeypatch
):
    d = brightness_task
    X, y = d["X_train"][:24], d["y_train"][:24]
    seen = capture_fit(monkeypatch)
    ranker = tiny_ranker(probe="ridge", max_epochs=1).fit(
        X, y, X_val=d["X_test"][:6], y_val=d["y_test"][:6]
    )
    data = seen["data"]
    assert not data.holdout and len(data.train_idx) == 24  # every training row trains
    np.testing.assert_array_equal(data.val_idx, np.arange(24, 30))
    assert ranker.probe_weight_ in WEIGHTS


def test_without_groups_or_with_few_nothing_is_held_out(brightness_task, monkeypatch):
    # Held-out rows of sources that also train favour the probe, which memorises
    # sources: measured on the demo's task, the blend picked 0.75 and ranked new
    # photos at 0.06. So rows are never held out for the blend, only groups.
    X, y, groups = (
        brightness_task["X_train"],
        brightness_task["y_train"],
        brightness_task["g_train"],
    )
    seen = capture_fit(monkeypatch)
    ranker = tiny_ranker(probe="ridge", max_epochs=1).fit(X, y)
    assert seen["data"].val_idx is None and len(seen["data"].train_idx) == len(X)
    assert ranker.probe_weight_ == 0.0 and ranker.validation_scores_ is None
    assert not ranker.adapter_.probe.weight.any()  # not even fitted: weight 0 either way
    few = groups < np.unique(groups)[9]  # 9 groups: two of them are over a fifth
    tiny_ranker(probe="ridge", max_epochs=1).fit(
        [x for x, f in zip(X, few) if f], y[few], groups=groups[few]
    )
    assert seen["data"].val_idx is None


def test_groups_are_held_out_whole(brightness_task, monkeypatch):
    import pandas as pd

    d = brightness_task
    frame = pd.DataFrame({"image": d["X_train"], "source": d["g_train"]})
    seen = capture_fit(monkeypatch)
    tiny_ranker(probe="ridge", max_epochs=1, group_column="source").fit(frame, d["y_train"])
    data = seen["data"]
    held = set(d["g_train"][data.val_idx])
    assert held and not held & set(d["g_train"][data.train_idx])


def test_holdout_fraction():
    from skrank._estimator.fitting import holdout_fraction

    assert holdout_fraction(np.repeat(np.arange(9), 8), 0.1) is None  # 2 of 9 groups > 1/5
    assert holdout_fraction(np.repeat(np.arange(10), 8), 0.1) == pytest.approx(0.2)
    assert holdout_fraction(np.arange(39), 0.1) is None  # 8 of 39 rows > 1/5
    assert holdout_fraction(np.repeat(np.arange(100), 10), 0.1) == 0.1


def test_blend_scales_the_head_and_sets_the_gate():
    config = AdapterConfig(8, 8, d_model=8, n_heads=2, probe="ridge", n_instructions=2)
    adapter = RankingAdapter(config)
    x, text, valid = torch.randn(3, 4, 8), torch.randn(1, 2, 8), torch.ones(1, 2, dtype=bool)
    adapter.probe.set(np.zeros(16), np.ones(16), np.ones((2, 16)), np.zeros(2))
    adapter.eval()
    with torch.no_grad():
        head, _ = adapter(x, text, valid, 1)  # gate 0: the head alone
        blend(adapter, 0.25)
        out, _ = adapter(x, text, valid, 1)
        ridge = adapter.probe.ridge(x, 1)
    torch.testing.assert_close(out, 0.75 * head + 0.25 * ridge)
    assert adapter.probe.gate.tolist() == [0.25, 0.25]


def test_probe_none_is_the_default_and_the_papers_head(data):
    X, y, _ = data
    assert tiny_ranker().probe == "none"
    adapter = tiny_ranker(max_epochs=1).fit(X, y).adapter_
    assert adapter.probe is None and adapter.n_features == adapter.score_head.n_features
    assert "probe.weight" not in adapter.state_dict()


def test_each_instruction_has_its_own_probe_row(brightness_task):
    import pandas as pd

    d = brightness_task
    X, y = d["X_train"][:32], d["y_train"][:32]
    frame = pd.DataFrame({"image": X + X, "instruction": ["brighter"] * 32 + ["darker"] * 32})
    ranker = tiny_ranker(probe="ridge", instruction=None, max_epochs=1).fit(
        frame, np.concatenate([y, -y])
    )
    probe = ranker.adapter_.probe
    assert probe.weight.shape[0] == 2 == ranker.adapter_.cfg.n_instructions
    # Opposite targets on the same images: opposite ridge solutions.
    k_bright = ranker.instructions_.index("brighter")
    torch.testing.assert_close(probe.weight[k_bright], -probe.weight[1 - k_bright])


def test_warm_start_keeps_the_probe_and_its_weight(brightness_task):
    import pandas as pd

    d = brightness_task
    X, y = d["X_train"][:24], d["y_train"][:24]
    ranker = tiny_ranker(probe="ridge", max_epochs=1).fit(X, y)
    before = ranker.adapter_.probe.weight.clone()
    ranker.set_params(warm_start=True).fit(X, y)
    torch.testing.assert_close(ranker.adapter_.probe.weight, before)  # continued, not refitted
    # Nor re-weighed, even with held-out images: the head was trained beside this weight.
    blend(ranker.adapter_, 0.5)
    ranker.fit(X, y, X_val=d["X_test"][:8], y_val=d["y_test"][:8])
    assert ranker.probe_weight_ == 0.5
    # New instructions (the adapter reads them as text) get an empty row of weight 0.
    both = pd.DataFrame({"image": X + X, "instruction": ["Sort by darkness."] * 24 + [INSTR] * 24})
    ranker.set_params(instruction=None).fit(both, np.r_[-y, y])
    probe, k = ranker.adapter_.probe, ranker.instructions_.index(INSTR)
    assert ranker.instructions_ == sorted(["Sort by darkness.", INSTR])
    assert probe.weight.shape[0] == 2 == ranker.adapter_.cfg.n_instructions
    torch.testing.assert_close(probe.weight[k], before[0])
    assert probe.gate.tolist()[k] == 0.5 and probe.gate.tolist()[1 - k] == 0.0
    assert not probe.weight[1 - k].any()
    assert np.isfinite(ranker.predict(both)).all()


# --- pickles and files -------------------------------------------------------------------


def test_files_saved_before_the_probe_load_without_one(data, tmp_path):
    X, y, X_test = data
    old = tiny_ranker(max_epochs=1, probe="none").fit(X, y)
    path = tmp_path / "old.skrank"
    save(old, path)
    meta, tensors = parts(path)
    meta = as_format_1(meta)  # a file written before the probe: of format 1
    config, params = json.loads(meta["adapter_config"]), json.loads(meta["params"])
    del config["probe"], config["n_instructions"], params["probe"]  # none of them existed then
    meta["adapter_config"], meta["params"] = json.dumps(config), json.dumps(params)
    save_file(tensors, str(path), metadata=meta)
    loaded = load(path)
    assert loaded.adapter_.probe is None and loaded.get_params()["probe"] == "none"
    np.testing.assert_array_equal(loaded.predict(X_test), old.predict(X_test))


def test_a_file_whose_probe_rows_do_not_match_its_instructions_is_refused(data, tmp_path):
    X, y, _ = data
    path = tmp_path / "m.skrank"
    save(tiny_ranker(probe="ridge", max_epochs=1).fit(X, y), path)
    meta, tensors = parts(path)
    config = json.loads(meta["adapter_config"])
    config["n_instructions"] = 2
    meta["adapter_config"] = json.dumps(config)
    tensors = {k: v for k, v in tensors.items()}
    for name in ("weight", "bias"):
        key = next(k for k in tensors if k.endswith(f"probe.{name}"))
        tensors[key] = torch.cat([tensors[key], tensors[key]])
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match="n_instructions"):
        load(path)


def test_a_file_with_a_non_finite_probe_is_refused(data, tmp_path):
    X, y, _ = data
    path = tmp_path / "m.skrank"
    save(tiny_ranker(probe="ridge", max_epochs=1).fit(X, y), path)
    meta, tensors = parts(path)
    key = next(k for k in tensors if k.endswith("probe.scale"))
    tensors[key] = tensors[key].clone()
    tensors[key][0] = float("inf")
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError):
        load(path)


@pytest.mark.parametrize(
    ("name", "value"), [("scale", 0.0), ("scale", -1.0), ("gate", 1.5), ("gate", -0.25)]
)
def test_a_file_with_a_probe_outside_its_meaning_is_refused(data, tmp_path, name, value):
    X, y, _ = data
    path = tmp_path / "m.skrank"
    save(tiny_ranker(probe="ridge", max_epochs=1).fit(X, y), path)
    meta, tensors = parts(path)
    key = next(k for k in tensors if k.endswith(f"probe.{name}"))
    tensors[key] = tensors[key].clone()
    tensors[key][0] = value
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ValueError, match=f"probe.{name}"):
        load(path)


def test_linear_probe_scores_standardised_statistics_times_its_gate():
    probe = LinearProbe(3, n_instructions=2)
    assert probe.gate.tolist() == [0.0, 0.0] and not list(probe.parameters())
    probe.set(np.arange(6.0), np.full(6, 2.0), np.ones((2, 6)), np.array([0.5, -0.5]))
    tokens = torch.randn(4, 5, 3)
    expected = ((token_statistics(tokens) - torch.arange(6.0)) / 2.0).sum(1)
    torch.testing.assert_close(probe.ridge(tokens, 0), expected + 0.5)
    torch.testing.assert_close(probe.ridge(tokens, 1), expected - 0.5)
    torch.testing.assert_close(probe(tokens, 1), torch.zeros(4))  # gate 0
    probe.gate[1] = 0.25
    torch.testing.assert_close(probe(tokens, 1), 0.25 * (expected - 0.5))
