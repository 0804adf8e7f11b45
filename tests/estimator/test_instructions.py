"""No instruction: CLIPRanker fits and predicts with the neutral default, fails fast
offline on its default backbone, and after a fit rows without an instruction take the
only one fitted."""

import time

import numpy as np
import pandas as pd
import pytest

from skrank import CLIPRanker
from skrank._estimator.inputs import DEFAULT_INSTRUCTION
from tests.helpers import INSTRUCTION, tiny_ranker


def test_no_instruction_fits_and_predicts_with_the_neutral_default(data):
    X, y, X_test, _ = data
    ranker = CLIPRanker(backbone="skrank-tiny", max_epochs=2, random_state=0).fit(X, y)
    assert ranker.instructions_ == [DEFAULT_INSTRUCTION] == ["Rank the images."]
    assert np.isfinite(ranker.predict(X_test)).all()
    same = CLIPRanker(DEFAULT_INSTRUCTION, backbone="skrank-tiny", max_epochs=2, random_state=0)
    np.testing.assert_array_equal(same.fit(X, y).predict(X_test), ranker.predict(X_test))


def test_the_first_line_offline_fails_fast_with_the_missing_weights_message(data, monkeypatch):
    from skrank._encoding.weights import WeightsUnavailableError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    X, y, _, _ = data
    t0 = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="not on this machine"):
        CLIPRanker().fit(X, y)
    assert time.perf_counter() - t0 < 5


def test_after_fit_rows_without_an_instruction_take_the_only_fitted_one(data):
    X, y, X_test, _ = data
    frame = pd.DataFrame({"image": X, "instruction": INSTRUCTION})
    ranker = tiny_ranker(instruction=None).fit(frame, y)
    assert ranker.instructions_ == [INSTRUCTION]
    np.testing.assert_array_equal(
        ranker.predict(X_test),
        ranker.predict(pd.DataFrame({"image": X_test, "instruction": INSTRUCTION})),
    )


def test_after_fit_on_several_instructions_a_bare_list_is_refused(data):
    X, y, X_test, _ = data
    frame = pd.DataFrame({"image": X + X, "instruction": ["A."] * len(X) + ["B."] * len(X)})
    ranker = tiny_ranker(instruction=None, max_epochs=1).fit(frame, np.r_[y, -y])
    with pytest.raises(ValueError, match="fitted on several instructions"):
        ranker.predict(X_test)


# ------------------------------------------------- a column overriding instruction=


def overrides(record) -> list:
    """The warnings of ``record`` that say an instruction column overrode instruction=."""
    return [w for w in record if "is not used; drop the column" in str(w.message)]


@pytest.fixture(scope="module")
def column_fit(data):
    """A ranker with instruction= set, fitted on a DataFrame whose column overrides it
    (the warnings that fit gave, and the ranker)."""
    X, y, _, _ = data
    frame = pd.DataFrame({"image": X, "instruction": INSTRUCTION})
    with pytest.warns(UserWarning) as record:
        ranker = tiny_ranker(instruction="Sort by something else.", max_epochs=1).fit(frame, y)
    return record, ranker


def test_a_column_overriding_instruction_warns_once_naming_both_and_the_cure(column_fit):
    record, ranker = column_fit
    (warning,) = overrides(record)
    assert warning.category is UserWarning and warning.filename == __file__
    text = str(warning.message)
    assert "instruction_column='instruction'" in text and "of X " in text
    assert "instruction='Sort by something else.'" in text
    assert "set instruction=None" in text
    assert ranker.instructions_ == [INSTRUCTION]  # the column still wins


def test_predict_score_and_compare_warn_once_per_call_when_the_column_overrides(column_fit, data):
    import warnings

    _, ranker = column_fit
    _, _, X_test, y_test = data
    frame = pd.DataFrame({"image": X_test, "instruction": INSTRUCTION})
    calls = {
        "predict": lambda: ranker.predict(frame),
        "transform": lambda: ranker.transform(frame),
        "score": lambda: ranker.score(frame, y_test),  # parses X once, not again in predict
        "compare": lambda: ranker.compare(frame[:4], frame[4:]),
    }
    for name, call in calls.items():
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            call()
        assert len(overrides(record)) == 1, name
        # The caller's line (transform's is sklearn's set_output wrapper, one frame deeper).
        if name != "transform":
            assert overrides(record)[0].filename == __file__, name


def test_no_warning_without_the_column_or_without_instruction(data):
    import warnings

    X, y, X_test, y_test = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # A ranker with instruction= set, on frames without the column.
        ranker = tiny_ranker(max_epochs=1).fit(pd.DataFrame({"image": X}), y)
        ranker.predict(pd.DataFrame({"image": X_test}))
        ranker.score(pd.DataFrame({"image": X_test, "other": 1}), y_test)
        ranker.predict(X_test)
        # instruction=None: the column is the only instruction given.
        frame = pd.DataFrame({"image": X, "instruction": INSTRUCTION})
        tiny_ranker(instruction=None, max_epochs=1).fit(frame, y).predict(frame)


def test_a_fit_warns_once_when_x_and_x_val_both_have_the_column(data):
    X, y, X_test, y_test = data
    frame = pd.DataFrame({"image": X, "instruction": INSTRUCTION})
    val = pd.DataFrame({"image": X_test, "instruction": INSTRUCTION})
    with pytest.warns(UserWarning) as record:
        tiny_ranker(instruction="Other.", max_epochs=1).fit(frame, y, X_val=val, y_val=y_test)
    (warning,) = overrides(record)
    assert "of X and X_val " in str(warning.message)
