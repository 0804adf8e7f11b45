"""Bad input to the estimator (issue 5): bad targets, parameters, instructions, columns,
groups and containers fail in ``fit`` before the backbone is loaded, with messages that
say which rows hold what; pandas containers with odd indexes behave like lists.

Refused images are in ``tests/images/test_refusals.py``; failed fits in
``test_failed_fits.py``.
"""

import math
import warnings

import numpy as np
import pytest
import torch

import skrank._estimator.ranker
from tests.helpers import INSTRUCTION as INSTR
from tests.helpers import quick_ranker as quick
from tests.helpers import textured

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------- targets and parameters

X4 = [textured(v, i, size=8) for i, v in enumerate((10, 90, 170, 250))]
Y4 = [0.0, 1.0, 2.0, 3.0]

BAD_FITS = {
    "y_nan": (dict(), X4, [0.0, np.nan, 2.0, 3.0], ValueError, r"NaN/inf.*rows \[1\]"),
    "y_inf": (dict(), X4, [0.0, 1.0, np.inf, 3.0], ValueError, r"NaN/inf.*rows \[2\]"),
    "y_text": (dict(), X4, ["a", "b", "c", "d"], TypeError, "y must be numeric.*'a'"),
    "y_none_value": (dict(), X4, [0.0, None, 2.0, 3.0], ValueError, "NaN/inf"),
    "y_missing": (dict(), X4, None, ValueError, "y is required"),
    "y_too_short": (dict(), X4, Y4[:3], ValueError, "4 images but y has 3"),
    "y_2d": (dict(), X4, np.zeros((4, 2)), ValueError, r"1-D.*\(4, 2\)"),
    "one_sample": (dict(), X4[:1], Y4[:1], ValueError, "1 sample"),
    "no_samples": (dict(), [], [], ValueError, "no images"),
    "one_target_value": (dict(), X4, [5.0] * 4, ValueError, "1 distinct target"),
    "empty_instruction": (dict(instruction=""), X4, Y4, ValueError, "instruction=''"),
    "blank_instruction": (dict(instruction="  \n"), X4, Y4, ValueError, "empty"),
    "number_instruction": (dict(instruction=7), X4, Y4, TypeError, "instruction.*int"),
    "negative_lr": (dict(lr=-1e-3), X4, Y4, ValueError, r"lr=-0\.001"),
    "zero_lr": (dict(lr=0.0), X4, Y4, ValueError, r"lr=0\.0"),
    "nan_lr": (dict(lr=math.nan), X4, Y4, ValueError, "lr=nan"),
    "word_lr": (dict(lr="fast"), X4, Y4, ValueError, r"lr='fast'.*\"auto\" or a float"),
    "batch_size_1": (dict(batch_size=1), X4, Y4, ValueError, "batch_size=1.*>= 2"),
    "batch_size_0": (dict(batch_size=0), X4, Y4, ValueError, "batch_size=0"),
    "batch_size_float": (dict(batch_size=8.0), X4, Y4, ValueError, r"batch_size=8\.0"),
    "device_unknown": (dict(device="tpu"), X4, Y4, ValueError, "device='tpu'"),
    "device_garbage": (dict(device="gpu:zero"), X4, Y4, ValueError, "device='gpu:zero'"),
    "device_number": (dict(device=0), X4, Y4, TypeError, "device.*0"),
    "device_cuda": (dict(device="cuda"), X4, Y4, ValueError, "device='cuda'.*not available"),
    "device_cuda_1": (dict(device="cuda:1"), X4, Y4, ValueError, "device='cuda:1'"),
    "negative_fraction_1": (
        dict(negative_fraction=1.0),
        X4,
        Y4,
        ValueError,
        r"negative_fraction=1\.0 \(float\).*a float in \[0, 1\) \(the share of a batch",
    ),
    "negative_fraction_negative": (
        dict(negative_fraction=-0.2),
        X4,
        Y4,
        ValueError,
        r"negative_fraction=-0\.2",
    ),
    "negative_fraction_text": (
        dict(negative_fraction="0.2"),
        X4,
        Y4,
        TypeError,
        r"negative_fraction='0\.2' \(str\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FITS))
def test_bad_targets_and_parameters_fail_before_the_backbone_loads(case, monkeypatch):
    params, X, y, error, match = BAD_FITS[case]

    def no_backbone(*args, **kwargs):
        raise AssertionError("validation must happen before the backbone is loaded")

    monkeypatch.setattr(skrank._estimator.ranker, "load_backbone", no_backbone)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ranker = quick(**params)
    with pytest.raises(error, match=match):
        ranker.fit(X, y)
    assert not [a for a in vars(ranker) if a.endswith("_")]


def test_complex_targets_are_refused():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ComplexWarning: refused before any cast
        with pytest.raises(ValueError, match="y must be real numbers; got complex"):
            quick().fit(X4, np.array(Y4) + 1j)


@pytest.mark.parametrize(
    "y, kind",
    [
        (np.array([1 + 2j, 3, 4]), "complex128"),
        ([1 + 2j, 3, 4], "complex128"),
        (np.array([1, 3, 4], dtype=np.complex64), "complex64"),  # even with no imaginary part
        (np.array([1 + 2j, 3.0, 4.0], dtype=object), "object"),
    ],
)
def test_complex_targets_are_one_clear_value_error(y, kind):
    # A ValueError, as scikit-learn's check_array raises for complex data.
    from skrank._estimator.inputs import check_targets

    with pytest.raises(ValueError) as info:
        check_targets(y, 3)
    assert str(info.value) == f"y must be real numbers; got complex values ({kind})"


def test_complex_targets_are_refused_by_score_and_as_y_val(tiny_fitted, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="y must be real numbers; got complex"):
            tiny_fitted.score(X4, np.array(Y4) + 1j)
        no_backbone(monkeypatch)
        with pytest.raises(ValueError, match="y_val must be real numbers; got complex"):
            quick().fit(X4, Y4, X_val=X4, y_val=np.array(Y4) + 1j)


def test_targets_too_large_to_standardise_are_refused():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow notice
        with pytest.raises(ValueError, match="y"):
            quick().fit(X4, [1e308, -1e308, 0.0, 1.0])


def test_instruction_longer_than_the_text_context_warns(probes):
    from skrank._encoding.backbone import load_backbone

    backbone = load_backbone("skrank-tiny", None)
    assert backbone.context_length == 32
    fits = "a " * 30  # 30 words + start and end markers: exactly 32 tokens
    assert backbone.n_text_tokens(fits) == 32
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quick(instruction=fits).fit(X4, Y4)
    long = "Sort the images by how bright they are, " * 6
    with pytest.warns(UserWarning, match=r"needs \d+ tokens.*at most 32: it was truncated"):
        ranker = quick(instruction=long).fit(X4, Y4)
    with pytest.warns(UserWarning, match="truncated"):
        assert np.isfinite(ranker.predict(probes)).all()


# --------------------------------------------------------------------------- misleading messages


def no_backbone(monkeypatch):
    """Fail the test if the backbone is loaded: the input must be refused before."""

    def refuse_backbone(*args, **kwargs):
        raise AssertionError("validation must happen before the backbone is loaded")

    monkeypatch.setattr(skrank._estimator.ranker, "load_backbone", refuse_backbone)


@pytest.mark.parametrize(
    "y",
    [
        np.arange(4) * 1e-200,  # the squares of the deviations are 0 in float64
        np.arange(4) * 1e-160,  # ... or subnormal: a std that is not the data's
        np.array([0.0, 5e-324, 1e-323, 1.5e-323]),  # subnormal targets
        np.arange(4) * 1e-200 + 1e-190,  # near-zero spread around a tiny offset
    ],
    ids=["1e-200", "1e-160", "subnormal", "offset"],
)
def test_targets_with_a_spread_too_small_to_standardise_say_so(y, monkeypatch):
    no_backbone(monkeypatch)
    with pytest.raises(ValueError, match="spread too small to standardise.*rescale y") as err:
        quick().fit(X4, y)
    assert "diverged" not in str(err.value) and "lr" not in str(err.value)


@pytest.mark.parametrize(
    "y",
    [
        [1e308, -1e308, 0.0, 1.0],
        [1e300, 1e300 * (1 + 1e-15), 1e300, 1e300],
        [0.0, 1e200, 2e200, 3e200],
    ],
)
def test_targets_too_wide_to_standardise_say_so(y, monkeypatch):
    no_backbone(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused without numpy's overflow notices
        with pytest.raises(ValueError, match="too wide a range to standardise.*rescale y"):
            quick().fit(X4, y)


def test_small_but_representable_targets_fit_and_predict_in_their_units():
    y = np.array(Y4) * 1e-100
    ranker = quick().fit(X4, y)
    assert ranker.y_scale_[0] == pytest.approx(np.std(y))
    pred = ranker.predict(X4)
    assert np.isfinite(pred).all() and np.abs(pred).max() < 1e-98


def test_targets_beyond_float64_are_refused():
    with pytest.raises(ValueError, match="too large for float64"):
        quick().fit(X4, [0, 1, 2, 10**400])


def frame(instructions, index=None):
    import pandas as pd

    return pd.DataFrame({"image": X4, "instruction": instructions}, index=index)


BAD_INSTRUCTIONS = {
    "integers": ([1, 2, 3, 4], r"must hold strings.*rows \[0, 1, 2, 3\] hold int.*first: 1"),
    "mixed": ([INSTR, 7, INSTR, 2.5], r"rows \[1, 3\] hold float, int"),
    "bytes": ([INSTR, INSTR.encode(), INSTR, INSTR], r"rows \[1\] hold bytes"),
    "none": ([INSTR, None, INSTR, np.nan], r"missing instructions \(None/NaN\) at rows \[1, 3\]"),
    "whitespace": ([INSTR, "   ", "\t\n", INSTR], r"whitespace-only instructions at rows \[1, 2\]"),
    "empty": ([INSTR, INSTR, INSTR, ""], r"empty or whitespace-only .* rows \[3\]"),
}


@pytest.mark.parametrize("case", sorted(BAD_INSTRUCTIONS))
def test_bad_instruction_cells_say_which_rows_and_what_they_hold(case, monkeypatch):
    no_backbone(monkeypatch)
    instructions, match = BAD_INSTRUCTIONS[case]
    with pytest.raises(ValueError, match=match) as err:
        quick(instruction=None).fit(frame(instructions), Y4)
    assert "instruction_column='instruction'" in str(err.value)


def test_bad_instruction_rows_also_give_the_index_labels(monkeypatch):
    no_backbone(monkeypatch)
    X = frame([INSTR, INSTR, 3, INSTR], index=[10, 20, 30, 40])
    with pytest.raises(ValueError, match=r"rows \[2\] \(index labels \[30\]\) hold int"):
        quick(instruction=None).fit(X, Y4)


@pytest.mark.parametrize("duplicated", ["image", "instruction", "group"])
def test_duplicated_column_names_are_named(duplicated, monkeypatch):
    import pandas as pd

    no_backbone(monkeypatch)
    columns = {"image": X4, "instruction": [INSTR] * 4, "group": list("aabb")}
    X = pd.concat([pd.DataFrame(columns), pd.DataFrame({duplicated: columns[duplicated]})], axis=1)
    ranker = quick(instruction=None, group_column="group")
    with pytest.raises(ValueError, match=rf"{duplicated}_column='{duplicated}' names 2 columns"):
        ranker.fit(X, Y4)


def test_a_column_level_of_a_multiindex_is_refused_by_name(monkeypatch):
    import pandas as pd

    no_backbone(monkeypatch)
    X = pd.DataFrame({("image", "a"): X4, ("image", "b"): X4})
    with pytest.raises(ValueError, match="image_column='image' names 2 columns"):
        quick().fit(X, Y4)


@pytest.mark.parametrize("missing", [np.nan, None])
def test_missing_group_labels_are_refused(missing, monkeypatch):
    import pandas as pd

    no_backbone(monkeypatch)
    X = pd.DataFrame({"image": X4, "g": ["a", missing, "b", "b"]})
    with pytest.raises(ValueError, match=r"group_column='g' has 1 missing label.*rows \[1\]"):
        quick(group_column="g").fit(X, Y4)
    with pytest.raises(ValueError, match=r"groups has 1 missing label.*rows \[2\]"):
        quick().fit(X4, Y4, groups=[1.0, 2.0, missing, 2.0])


def test_groups_as_a_series_name_their_index_labels(monkeypatch):
    import pandas as pd

    no_backbone(monkeypatch)
    groups = pd.Series([1.0, 1.0, np.nan, 2.0], index=list("wxyz"))
    with pytest.raises(ValueError, match=r"rows \[2\] \(index labels \['y'\]\)"):
        quick().fit(X4, Y4, groups=groups)


@pytest.mark.parametrize("container", [dict, set])
def test_unordered_or_keyed_containers_are_refused(container, monkeypatch):
    no_backbone(monkeypatch)
    X = {"a.png": 1, "b.png": 2} if container is dict else {"a.png", "b.png"}
    with pytest.raises(TypeError, match=f"X is a {container.__name__}"):
        quick().fit(X, [0.0, 1.0])


def test_series_with_a_non_default_index_behave_like_lists(fitted, probes):
    import pandas as pd

    index = [f"img{i}" for i in range(len(probes))][::-1]
    X = pd.Series(probes, index=index)
    np.testing.assert_array_equal(fitted.predict(X), fitted.predict(probes))
    y = pd.Series(np.arange(len(probes), dtype=float), index=index)
    assert fitted.score(X, y) == pytest.approx(fitted.score(probes, np.arange(len(probes))))
    ranker = quick().fit(pd.Series(X4, index=[7, 3, 9, 1]), pd.Series(Y4, index=[0, 1, 2, 3]))
    np.testing.assert_array_equal(ranker.predict(X4), quick().fit(X4, Y4).predict(X4))
