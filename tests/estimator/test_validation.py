"""A validation set of the user's own (``X_val``, ``y_val``): appended, scored every
epoch, never trained on, and checked before any training; the per-epoch records
(``history_``, ``loss_curve_``, ``validation_scores_``) as MLPRegressor keeps them,
across warm starts."""

import numpy as np
import pandas as pd
import pytest

from tests.helpers import capture_train, tiny_ranker

# --- a validation set of the user's own --------------------------------------------------


def test_x_val_rows_are_appended_validated_on_and_never_trained_on(data, monkeypatch):
    X, y, X_test, y_test = data
    seen = capture_train(monkeypatch)
    tiny_ranker(early_stopping=True, validation_fraction=0.5).fit(X, y, X_val=X_test, y_val=y_test)
    d = seen["data"]
    np.testing.assert_array_equal(d.train_idx, np.arange(len(X)))  # no split of X
    np.testing.assert_array_equal(d.val_idx, np.arange(len(X), len(X) + len(X_test)))
    # Standardised with the training rows' mean and scale, not its own.
    np.testing.assert_allclose(d.y_std[d.val_idx], (y_test - y.mean()) / y.std())
    assert seen["cfg"].early_stopping


def test_x_val_is_scored_every_epoch_and_early_stopping_keeps_the_best(data):
    X, y, X_test, y_test = data
    scored = tiny_ranker(max_epochs=3).fit(X, y, X_val=X_test, y_val=y_test)
    assert len(scored.validation_scores_) == 3 and None not in scored.validation_scores_
    assert scored.best_validation_score_ == max(scored.validation_scores_)
    assert scored.n_iter_ == 3  # only scored: no stopping without early_stopping
    stopped = tiny_ranker(max_epochs=6, early_stopping=True, n_iter_no_change=1)
    stopped.fit(X, y, X_val=X_test, y_val=y_test)
    assert stopped.n_iter_ < 6
    # The epoch kept is the best one: its validation score is the adapter's now.
    from skrank.metrics import spearman_score

    now = spearman_score(y_test, stopped.predict(X_test))
    assert now == pytest.approx(stopped.best_validation_score_, abs=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(X_val="X_test"), "X_val was given without y_val"),
        (dict(y_val="y_test"), "y_val was given without X_val"),
        (dict(X_val="X_test", y_val="short"), "X_val has 8 images but y_val has 3"),
        (dict(X_val="one", y_val="one_y"), "at least 2"),
        (dict(X_val="X_test", y_val="nan"), "y_val has 1 NaN"),
        (dict(X_val="other_instruction", y_val="y_test"), "X_val has instruction"),
    ],
)
def test_bad_validation_sets_are_refused_before_any_training(data, monkeypatch, kwargs, match):
    X, y, X_test, y_test = data
    seen = capture_train(monkeypatch)
    values = {
        "X_test": X_test,
        "y_test": y_test,
        "short": y_test[:3],
        "one": X_test[:1],
        "one_y": y_test[:1],
        "nan": np.r_[np.nan, y_test[1:]],
        "other_instruction": pd.DataFrame({"image": X_test, "instruction": "Other."}),
    }
    with pytest.raises(ValueError, match=match):
        tiny_ranker().fit(X, y, **{k: values[v] for k, v in kwargs.items()})
    assert not seen


# --- histories as MLPRegressor keeps them ------------------------------------------------


def test_history_continues_across_warm_start_fits(data):
    X, y, _, _ = data
    ranker = tiny_ranker(max_epochs=2, warm_start=True).fit(X, y)
    first = [dict(h) for h in ranker.history_]
    ranker.fit(X, y)
    assert [h["epoch"] for h in ranker.history_] == [1, 2, 3, 4]
    assert ranker.history_[:2] == first  # the first fit's record is kept as it was
    assert ranker.n_iter_ == 4
    assert ranker.loss_curve_ == [h["loss"] for h in ranker.history_]
    assert ranker.validation_scores_ is None and ranker.best_validation_score_ is None
    ranker.set_params(warm_start=False).fit(X, y)  # a cold fit starts the record again
    assert [h["epoch"] for h in ranker.history_] == [1, 2] and ranker.n_iter_ == 2


def test_history_attributes_need_a_fit():
    from sklearn.exceptions import NotFittedError

    ranker = tiny_ranker()
    for name in ("loss_curve_", "validation_scores_", "best_validation_score_"):
        with pytest.raises(NotFittedError):
            getattr(ranker, name)
        assert not hasattr(ranker, name)


def test_history_is_capped_at_what_a_model_file_holds():
    from skrank._estimator.fitting import continued_history
    from skrank.persistence._schema import MAX_HISTORY

    entry = dict(loss=1.0, reg_loss=1.0, rank_loss=0.0, lr=0.0, val_score=None, seconds=0.0)
    previous = [dict(entry, epoch=e) for e in range(1, MAX_HISTORY + 1)]
    out = continued_history(previous, [dict(entry, epoch=1), dict(entry, epoch=2)])
    assert len(out) == MAX_HISTORY
    assert out[-1]["epoch"] == MAX_HISTORY + 2 and out[0]["epoch"] == 3
