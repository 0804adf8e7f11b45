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
