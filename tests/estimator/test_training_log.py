"""Watching and steering training: the epoch log (``verbose``, the ``skrank`` logger),
callbacks, early stopping by ``scoring`` and ``tol``, ``best_epoch_``, named validation
sets that searches pass whole, and what ``warm_start`` keeps."""

import logging

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

import skrank
from skrank import CLIPRanker, InvalidParameterError
from skrank.callbacks import EpochState
from skrank.metrics import kendall_score, ndcg_score, spearman_score
from tests.helpers import capture_train, tiny_ranker

# Their validation sets are small on purpose (8 images): the warning says so, rightly.
pytestmark = pytest.mark.filterwarnings("ignore:early stopping validates on")

# --- the training log ----------------------------------------------------------------------


def test_verbose_2_prints_one_line_per_epoch_and_the_summary_once(data, capsys):
    X, y, X_test, y_test = data
    ranker = tiny_ranker(max_epochs=3, verbose=2).fit(X, y, X_val=X_test, y_val=y_test)
    lines = capsys.readouterr().out.strip().splitlines()
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert len(epochs) == 3 == ranker.n_iter_
    for n, (line, record) in enumerate(zip(epochs, ranker.history_), start=1):
        assert line.startswith(f"epoch {n}/3, loss {record['loss']:.4f}")
        assert f"val spearman {record['val_score']:.4f}" in line
        assert f"lr {record['lr']:.2e}" in line and line.endswith(" s")
    summaries = [line for line in lines if line.startswith("CLIPRanker:")]
    assert len(summaries) == 1 and "3 epoch(s)" in summaries[0]


def test_every_epoch_goes_to_the_skrank_logger_whatever_verbose_is(data, capsys, caplog):
    X, y, _, _ = data
    with caplog.at_level(logging.INFO, logger="skrank"):
        tiny_ranker(max_epochs=2, verbose=0).fit(X, y)
    logged = [r.getMessage() for r in caplog.records if r.name == "skrank"]
    assert [m.split(",")[0] for m in logged] == ["epoch 1/2", "epoch 2/2"]
    captured = capsys.readouterr()
    assert captured.out == "" and "epoch" not in captured.err  # verbose=0 prints nothing


def test_the_default_verbose_stays_silent_on_a_short_fit(data, capsys):
    X, y, _, _ = data
    ranker = tiny_ranker(max_epochs=2)
    assert ranker.verbose == "auto" == CLIPRanker().verbose
    ranker.fit(X, y)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# --- callbacks ------------------------------------------------------------------------------


def test_a_callback_sees_every_epoch_record_and_can_stop_training(data):
    X, y, X_test, y_test = data
    seen = []

    def stop_at_3(state):
        seen.append(state)
        return state.epoch == 3

    ranker = tiny_ranker(max_epochs=8, callbacks=[stop_at_3]).fit(X, y, X_val=X_test, y_val=y_test)
    assert ranker.n_iter_ == 3 == len(seen) == len(ranker.history_)
    assert [s.record for s in seen] == ranker.history_
    assert all(isinstance(s, EpochState) and s.max_epochs == 8 for s in seen)
    assert ranker.best_epoch_ == 3  # no early stopping: the last epoch run is kept
    # The monitored rows' predictions, in the units of y, score as the record says.
    y_true, y_pred = seen[-1].validation
    np.testing.assert_array_equal(y_true, y_test)
    assert spearman_score(y_true, y_pred) == pytest.approx(seen[-1].record["val_score"])


def test_every_callback_is_called_even_after_one_asked_to_stop(data):
    X, y, _, _ = data
    calls = []
    callbacks = [
        lambda s: calls.append(("a", s.epoch)) or True,
        lambda s: calls.append(("b", s.epoch)),
    ]
    tiny_ranker(max_epochs=4, callbacks=callbacks).fit(X, y)
    assert calls == [("a", 1), ("b", 1)]


def test_a_callback_that_raises_leaves_the_estimator_unchanged(data):
    X, y, _, _ = data

    class Pruned(Exception):
        pass

    def prune(state):
        if state.epoch == 2:
            raise Pruned

    ranker = tiny_ranker(max_epochs=4, callbacks=[prune])
    with pytest.raises(Pruned):
        ranker.fit(X, y)
    assert not hasattr(ranker, "adapter_")
    fitted = tiny_ranker(max_epochs=1).fit(X, y)
    before = fitted.predict(X[:4])
    fitted.set_params(max_epochs=4, callbacks=[prune])
    with pytest.raises(Pruned):
        fitted.fit(X, y)
    np.testing.assert_array_equal(fitted.predict(X[:4]), before)
    assert fitted.n_iter_ == 1


def test_a_checkpoint_is_the_ranker_as_it_was_after_that_epoch(data, tmp_path):
    X, y, X_test, y_test = data
    checkpoints = {}

    def keep(state):
        checkpoints[state.epoch] = state.ranker()

    ranker = tiny_ranker(max_epochs=3, callbacks=[keep]).fit(X, y)
    np.testing.assert_allclose(checkpoints[3].predict(X_test), ranker.predict(X_test), rtol=1e-6)
    second = checkpoints[2]
    assert second.n_iter_ == 2 == second.best_epoch_ == len(second.history_)
    assert not np.allclose(second.predict(X_test), ranker.predict(X_test))
    skrank.save(second, tmp_path / "epoch2.skrank")
    loaded = skrank.load(tmp_path / "epoch2.skrank")
    np.testing.assert_allclose(loaded.predict(X_test), second.predict(X_test), rtol=1e-6)
    assert loaded.callbacks is None  # callbacks are the session's code, not the model's


def test_callbacks_are_validated_and_survive_clone(data):
    X, y, _, _ = data
    with pytest.raises(InvalidParameterError, match="callbacks="):
        tiny_ranker(callbacks=["not callable"]).fit(X, y)
    with pytest.raises(InvalidParameterError, match="callbacks="):
        tiny_ranker(callbacks=print).fit(X, y)  # a list of them, not one
    from sklearn.base import clone

    def f(state):
        return None

    assert clone(tiny_ranker(callbacks=[f])).callbacks == [f]


# --- early stopping by any scorer -----------------------------------------------------------


def test_scoring_ndcg_at_10_drives_early_stopping(data):
    X, y, X_test, y_test = data
    seen = []
    ranker = tiny_ranker(
        max_epochs=10,
        early_stopping=True,
        n_iter_no_change=2,
        scoring="ndcg@10",
        callbacks=[lambda s: seen.append((s.record["val_score"], s.ranker()))],
    )
    ranker.fit(X, y, X_val=X_test, y_val=y_test + 1)  # NDCG: non-negative relevance
    for score, checkpoint in seen:  # every epoch's score is NDCG@10 of its predictions
        expected = ndcg_score(y_test + 1, checkpoint.predict(X_test), k=10)
        assert score == pytest.approx(expected, abs=1e-6)
    scores = [s for s, _ in seen]
    best = 1 + int(np.argmax(scores))
    assert ranker.best_epoch_ == best and ranker.validation_scores_ == scores
    # The adapter kept is the best epoch's: its NDCG@10 now is that epoch's.
    now = ndcg_score(y_test + 1, ranker.predict(X_test), k=10)
    assert now == pytest.approx(scores[best - 1], abs=1e-6)


def test_errors_are_negated_so_early_stopping_still_maximises(data):
    X, y, X_test, y_test = data
    ranker = tiny_ranker(max_epochs=2, scoring="neg_mean_absolute_error")
    ranker.fit(X, y, X_val=X_test, y_val=y_test)
    mae = np.mean(np.abs(ranker.predict(X_test) - y_test))
    assert ranker.history_[-1]["val_score"] == pytest.approx(-mae, rel=1e-5)


def test_tol_is_the_least_improvement_that_counts(data):
    X, y, X_test, y_test = data
    ranker = tiny_ranker(max_epochs=10, early_stopping=True, n_iter_no_change=2, tol=10.0)
    ranker.fit(X, y, X_val=X_test, y_val=y_test)
    assert ranker.n_iter_ == 3 and ranker.best_epoch_ == 1  # nothing rises by 10
    with pytest.raises(InvalidParameterError, match="tol=-1"):
        tiny_ranker(tol=-1).fit(X, y)


@pytest.mark.parametrize("bad", ["r2", "spearmanr", "ndcg@0", None, 3])
def test_a_scoring_that_is_not_skranks_own_is_refused(data, bad):
    X, y, _, _ = data
    with pytest.raises(InvalidParameterError, match="scoring="):
        tiny_ranker(scoring=bad).fit(X, y)


def test_a_scoring_that_cannot_score_the_validation_rows_is_refused_before_training(
    data, monkeypatch
):
    X, y, X_test, y_test = data
    seen = capture_train(monkeypatch)
    with pytest.raises(ValueError, match="scoring='ndcg' cannot score.*non-negative"):
        tiny_ranker(scoring="ndcg").fit(X, y, X_val=X_test, y_val=y_test - 100)
    weights = np.linspace(0.5, 2, len(y))
    with pytest.raises(ValueError, match="scoring='kendall' takes no sample weights"):
        tiny_ranker(scoring="kendall", early_stopping=True, validation_fraction=0.3).fit(
            X, y, sample_weight=weights
        )
    assert seen == {}  # nothing trained


# --- named validation sets ------------------------------------------------------------------


def test_named_sets_are_scored_every_epoch_within_their_groups_and_weights(data):
    X, y, X_test, y_test = data
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    weight = np.array([1, 2, 1, 2, 1, 1, 3, 1.0])
    seen = []
    ranker = tiny_ranker(max_epochs=2, callbacks=[seen.append])
    ranker.fit(
        X,
        y,
        validation_data=[
            ("plain", X_test, y_test),
            ("grouped", X_test, y_test, {"groups": groups, "sample_weight": weight}),
        ],
    )
    for state, record in zip(seen, ranker.history_):
        assert record["val_score"] is None and set(record["validation"]) == {"plain", "grouped"}
        y_true, y_pred = state.predictions["grouped"]
        expected = spearman_score(y_true, y_pred, groups=groups, sample_weight=weight)
        assert record["validation"]["grouped"] == pytest.approx(expected)
        y_true, y_pred = state.predictions["plain"]
        assert record["validation"]["plain"] == pytest.approx(spearman_score(y_true, y_pred))


def test_with_early_stopping_the_first_named_set_is_monitored(data):
    X, y, X_test, y_test = data
    ranker = tiny_ranker(max_epochs=3, early_stopping=True, scoring="kendall")
    ranker.fit(X, y, validation_data={"faces": (X_test, y_test), "more": (X_test[:4], y_test[:4])})
    for record in ranker.history_:
        assert record["val_score"] == record["validation"]["faces"]
    assert ranker.best_epoch_ == 1 + int(np.argmax(ranker.validation_scores_))
    assert ranker.history_[-1]["validation"]["faces"] <= max(ranker.validation_scores_)
    now = kendall_score(y_test, ranker.predict(X_test))
    assert now == pytest.approx(max(ranker.validation_scores_), abs=1e-6)


def test_a_search_gives_every_fit_the_whole_named_sets(data, monkeypatch):
    """X_val of len(X) rows is cut per fold (scikit-learn's rule for fit parameters);
    validation_data is not: every fit of the search sees all of it."""
    import skrank._estimator.ranker as ranker_module

    X, y, X_test, y_test = data
    X_full = X[: len(X_test)] + X_test  # 16 validation images, to train on 16 too
    y_full = np.concatenate([y[: len(y_test)], y_test])
    X_train, y_train = X[:16], y[:16]
    sizes = []
    real = ranker_module.validation_sets

    def spy(validation_data, parse, scaling, n_rows):
        sets = real(validation_data, parse, scaling, n_rows)
        sizes.append(({v.name: len(v.y) for v in sets}, n_rows))
        return sets

    monkeypatch.setattr(ranker_module, "validation_sets", spy)
    search = GridSearchCV(
        tiny_ranker(max_epochs=1),
        {"lr": [1e-3, 2e-3]},
        cv=KFold(2),
        refit=False,
        error_score="raise",
    )
    search.fit(X_train, y_train, validation_data={"all": (X_full, y_full)})
    assert len(sizes) == 4
    assert all(named == {"all": 16} and n_rows == 8 for named, n_rows in sizes)


@pytest.mark.parametrize(
    "validation_data, error, match",
    [
        ("faces", TypeError, "validation_data must be a dict"),
        ({"faces": "X"}, TypeError, "values must be"),
        ([("faces", "X", "y", {"weights": 1})], TypeError, "options"),
        ([("", "X", "y")], ValueError, "name must be a non-empty string"),
        ([("a", "X", "y"), ("a", "X", "y")], ValueError, "names 'a' twice"),
        ({"faces": ("X", "short")}, ValueError, "'faces'.s X has 8 images but"),
        ({"faces": ("X", "y", {"sample_weight": "bad"})}, ValueError, "sample_weight"),
    ],
)
def test_bad_named_sets_are_refused_before_any_training(
    data, monkeypatch, validation_data, error, match
):
    X, y, X_test, y_test = data
    seen = capture_train(monkeypatch)
    values = {"X": X_test, "y": y_test, "short": y_test[:3], "bad": -np.ones(8)}

    def resolve(value):
        if isinstance(value, str):
            return values.get(value, value)
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(resolve(v) for v in value)
        return value

    if isinstance(validation_data, dict):
        validation_data = {k: resolve(v) for k, v in validation_data.items()}
    elif isinstance(validation_data, list):
        validation_data = [(row[0], *(resolve(v) for v in row[1:])) for row in validation_data]
    with pytest.raises(error, match=match):
        tiny_ranker().fit(X, y, validation_data=validation_data)
    assert seen == {}


def test_as_many_named_sets_as_rows_are_refused_as_possibly_cut(data):
    X, y, X_test, y_test = data
    sets = [(f"s{i}", X_test, y_test) for i in range(4)]
    with pytest.raises(ValueError, match="as many as X has rows"):
        tiny_ranker().fit(X[:4], y[:4], validation_data=sets)


# --- warm start -----------------------------------------------------------------------------


def test_warm_start_keeps_the_target_scaling_and_continues_the_record(data):
    X, y, _, _ = data
    ranker = tiny_ranker(max_epochs=2, warm_start=True).fit(X, y)
    mean, scale = ranker.y_mean_.copy(), ranker.y_scale_.copy()
    ranker.fit(X, 3 * y + 100)  # other units: the adapter's stay those of the first fit
    np.testing.assert_array_equal(ranker.y_mean_, mean)
    np.testing.assert_array_equal(ranker.y_scale_, scale)
    assert ranker.n_iter_ == 4 and ranker.best_epoch_ == 4
    assert [h["epoch"] for h in ranker.history_] == [1, 2, 3, 4]
    fresh = tiny_ranker(max_epochs=2).fit(X, 3 * y + 100)
    assert fresh.y_mean_[0] == pytest.approx(3 * mean[0] + 100)


def test_best_epoch_survives_save_and_load_and_old_pickles_say_unknown(data, tmp_path):
    X, y, X_test, y_test = data
    ranker = tiny_ranker(max_epochs=4, early_stopping=True, n_iter_no_change=1)
    ranker.fit(X, y, validation_data={"faces": (X_test, y_test)})
    skrank.save(ranker, tmp_path / "m.skrank")
    loaded = skrank.load(tmp_path / "m.skrank")
    assert loaded.best_epoch_ == ranker.best_epoch_
    assert loaded.history_ == ranker.history_  # the named sets' scores included
    state = ranker.__getstate__()
    del state["best_epoch_"]  # as a pickle made before it was recorded
    old = CLIPRanker.__new__(CLIPRanker)
    old.__setstate__(state)
    assert old.best_epoch_ is None
