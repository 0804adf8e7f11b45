"""save, load and pickles of CLIPPreferenceRanker: the file names its estimator.

A file of a CLIPPreferenceRanker records ``"estimator": "CLIPPreferenceRanker"``;
a file without the key holds a CLIPRanker (every file written before). The schema
checks each file against its own estimator's parameters, fitted attributes and
history, so one estimator's fields under the other's name are refused.
"""

import json
import pickle

import joblib
import numpy as np
import pytest
from safetensors.torch import save_file

from skrank import CLIPPreferenceRanker, CLIPRanker, InvalidParameterError, load, save
from tests.helpers import parts, textured

pytestmark = pytest.mark.usefixtures("one_thread")

N_IMAGES = 10


@pytest.fixture(scope="module")
def images():
    """Ten textured images of rising brightness."""
    return [textured(v, i) for i, v in enumerate(np.linspace(20, 235, N_IMAGES))]


def comparisons(images):
    """Every pair of ``images`` once, and whether the first is the brighter."""
    pairs = [(i, j) for i in range(len(images)) for j in range(len(images)) if i != j]
    pairs = pairs[::2]
    return [(images[i], images[j]) for i, j in pairs], np.array([float(i > j) for i, j in pairs])


def preference_ranker(**kw):
    params = dict(
        backbone="skrank-tiny", max_epochs=2, batch_size=8, random_state=0, device="cpu", verbose=0
    )
    return CLIPPreferenceRanker(**{**params, **kw})


@pytest.fixture(scope="module")
def model(images):
    X, y = comparisons(images)
    # A pair of column labels of its own: it is stored as a list and read back a tuple.
    return preference_ranker(image_columns=("left", "right")).fit(X, y)


@pytest.fixture(scope="module")
def pref_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("pref") / "prefs.skrank"
    save(model, path)
    return path


def rewritten(path, out, **changes):
    """A copy of the model file ``path`` at ``out`` with metadata replaced: a value per
    key (None deletes it; a dict updates that JSON document)."""
    meta, tensors = parts(path)
    for key, value in changes.items():
        if value is None:
            meta.pop(key, None)
        elif isinstance(value, dict):
            doc = json.loads(meta[key])
            doc.update(value)
            meta[key] = json.dumps({k: v for k, v in doc.items() if v is not None})
        else:
            meta[key] = value
    save_file(tensors, str(out), metadata=meta)
    return out


def refusal(path) -> str:
    with pytest.raises(ValueError) as info:
        load(path)
    message = str(info.value)
    assert str(path) in message and len(message.splitlines()) == 1
    return message


# ------------------------------------------------------------------------ round trips


def test_save_and_load_give_the_same_preference_ranker(model, pref_file, images):
    loaded = load(pref_file)
    assert type(loaded) is CLIPPreferenceRanker
    assert loaded.get_params() == model.get_params()
    assert loaded.image_columns == ("left", "right")  # a tuple again, as given
    X, _ = comparisons(images)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.score_images(images), model.score_images(images))
    assert loaded.history_ == model.history_ and loaded.n_iter_ == model.n_iter_
    assert loaded.lr_ == model.lr_ and loaded.preset_ == model.preset_
    assert loaded.instructions_ == model.instructions_
    # Exactly the estimator's fitted attributes: none of CLIPRanker's.
    assert sorted(vars(loaded)) == sorted(vars(model))
    assert parts(pref_file)[0]["estimator"] == "CLIPPreferenceRanker"


def test_a_ranker_file_names_no_estimator_and_loads_as_a_cliranker(saved):
    meta, _ = parts(saved)
    assert "estimator" not in meta  # older skrank reads it, as before
    assert type(load(saved)) is CLIPRanker
    named = rewritten(saved, saved.parent / "named.skrank", estimator="CLIPRanker")
    assert type(load(named)) is CLIPRanker


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_a_preference_ranker_pickles(model, images, tmp_path, dump):
    if dump == "pickle":
        copy = pickle.loads(pickle.dumps(model))
    else:
        joblib.dump(model, tmp_path / "m.joblib")
        copy = joblib.load(tmp_path / "m.joblib")
    X, _ = comparisons(images)
    np.testing.assert_array_equal(copy.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(copy.score_images(images), model.score_images(images))
    assert sorted(vars(copy)) == sorted(vars(model))  # no CLIPRanker attribute added


def test_load_arguments_are_checked_against_the_files_estimator(pref_file, saved):
    assert load(pref_file, cache="disk").cache == "disk"  # shared parameters work for both
    with pytest.raises(ValueError, match=r"pair_scope=\.\.\.\): .*not a parameter of CLIPPref"):
        load(pref_file, pair_scope="group")
    with pytest.raises(ValueError, match=r"score_weight=\.\.\.\): .*not a parameter of CLIPRanker"):
        load(saved, score_weight=2.0)
    with pytest.raises(InvalidParameterError, match="score_weight"):
        load(pref_file, score_weight=-1.0)  # the caller's mistake, before the file is read
    with pytest.raises(TypeError, match="unknown parameter"):
        load(pref_file, bogus=1)


def test_save_refuses_a_pipeline_of_a_preference_ranker_saying_what_to_do(model, tmp_path):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(TypeError, match=r"skrank.save\(pipeline\[-1\], path\)"):
        save(make_pipeline(FunctionTransformer(), model), tmp_path / "m.skrank")
    with pytest.raises(TypeError, match="CLIPRanker or CLIPPreferenceRanker, not a dict"):
        save({}, tmp_path / "m.skrank")


def test_save_needs_a_fitted_preference_ranker(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        save(preference_ranker(), tmp_path / "m.skrank")


# --------------------------------------------------------------------- hostile files


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("GradientBoostingRanker", "'GradientBoostingRanker' is not an estimator this skrank"),
        ("CLIPEmbedder", "'CLIPEmbedder' is not an estimator"),
        ("", "'' is not an estimator"),
        ("\x1b[2J", "'\\x1b[2J' is not an estimator"),
        ("x" * 100, "metadata.estimator: has 100 characters"),
    ],
)
def test_an_unknown_estimator_is_refused_naming_it(pref_file, tmp_path, name, field):
    message = refusal(rewritten(pref_file, tmp_path / "unknown.skrank", estimator=name))
    assert "metadata.estimator" in message and field in message
    assert "\x1b" not in message


def test_one_estimators_file_under_the_others_name_is_refused(pref_file, saved, tmp_path):
    # A preference file without its name reads as a CLIPRanker's: its parameters are not.
    message = refusal(rewritten(pref_file, tmp_path / "a.skrank", estimator=None))
    assert "params.image_columns: is not a known key" in message
    # A ranker file named a preference ranker's: CLIPRanker's parameters are refused.
    message = refusal(rewritten(saved, tmp_path / "b.skrank", estimator="CLIPPreferenceRanker"))
    assert "is not a known key" in message and message.count("params.") >= 1


@pytest.mark.parametrize(
    ("doc", "change", "field"),
    [
        # CLIPRanker-only parameters under the preference estimator, and its own checked.
        ("params", {"pair_scope": "all"}, "params.pair_scope: is not a known key"),
        ("params", {"group_column": "g"}, "params.group_column: is not a known key"),
        ("params", {"score_weight": -1}, "score_weight=-1"),
        ("params", {"image_columns": ["a", "a"]}, "image_columns"),
        ("params", {"image_columns": ["a", "b", "c"]}, "image_columns"),
        ("params", {"image_columns": "ab"}, "image_columns"),
        ("params", {"score_weight": 0, "rank_weight": 0}, "leave nothing to train"),
        # CLIPRanker-only fitted attributes.
        ("fitted", {"y_mean_": [0.0]}, "fitted.y_mean_: is not a known key"),
        ("fitted", {"best_epoch_": 1}, "fitted.best_epoch_: is not a known key"),
        ("fitted", {"lr_": None}, "fitted.lr_: is missing"),
        ("fitted", {"preset_": "nope"}, "fitted.preset_"),
        ("fitted", {"history_": [{"epoch": 1}]}, "fitted.history_[0].loss: is missing"),
    ],
)
def test_fields_of_the_other_estimator_are_refused(pref_file, tmp_path, doc, change, field):
    message = refusal(rewritten(pref_file, tmp_path / "bad.skrank", **{doc: change}))
    assert field in message


def test_a_preference_history_is_checked_by_its_own_keys(model, pref_file, tmp_path):
    epoch = dict(model.history_[0])
    ranker_epoch = {**epoch, "reg_loss": 0.1, "val_score": None}
    message = refusal(
        rewritten(pref_file, tmp_path / "h.skrank", fitted={"history_": [ranker_epoch]})
    )
    assert "fitted.history_[0]." in message and "is not a known key" in message
    negative = {**epoch, "score_loss": -1.0}
    message = refusal(rewritten(pref_file, tmp_path / "n.skrank", fitted={"history_": [negative]}))
    assert "fitted.history_[0].score_loss" in message


def test_a_ranker_file_with_preference_parameters_is_refused(saved, tmp_path):
    for change, field in [
        ({"score_weight": 1.0}, "params.score_weight: is not a known key"),
        ({"image_columns": ["a", "b"]}, "params.image_columns: is not a known key"),
    ]:
        message = refusal(rewritten(saved, tmp_path / "r.skrank", params=change))
        assert field in message


def test_the_cli_record_is_the_estimators_own(model, saved, tmp_path):
    from skrank.persistence._io import load_with_cli, save_with_cli

    path = tmp_path / "cli.skrank"
    save_with_cli(model, path, {"winner_column": "winner"})
    assert load_with_cli(path)[1] == {"winner_column": "winner"}
    with pytest.raises(ValueError, match="cli.target_column: is not a known key"):
        save_with_cli(model, path, {"target_column": "y"})
    message = refusal(rewritten(saved, tmp_path / "c.skrank", cli='{"winner_column": "w"}'))
    assert "cli.winner_column: is not a known key" in message


# ------------------------------------------------------- fit refuses what save could not


def test_fit_refuses_an_instruction_save_could_not_write_before_training(images, monkeypatch):
    import pandas as pd

    import skrank._estimator.preference_ranker as module

    def refuse(*args, **kwargs):
        raise AssertionError("fit went on to train")

    monkeypatch.setattr(module, "train_preferences", refuse)
    X, y = comparisons(images)
    too_long = "Sort the images by brightness. " * 170  # longer than a file holds
    frame = pd.DataFrame(
        {"image_a": [a for a, _ in X], "image_b": [b for _, b in X], "instruction": too_long}
    )
    model = preference_ranker()
    with pytest.raises(ValueError, match="save could not write the fitted CLIPPreferenceRanker"):
        model.fit(frame, y)
    assert not hasattr(model, "adapter_")


def test_a_column_pair_save_cannot_write_warns_at_fit(images, tmp_path):
    X, y = comparisons(images)
    model = preference_ranker(max_epochs=1, image_columns=(("a", 1), "b"))
    with pytest.warns(UserWarning, match=r"save will refuse this CLIPPreferenceRanker"):
        model.fit(X, y)
    with pytest.raises(ValueError, match=r"params.image_columns\[0\]"):
        save(model, tmp_path / "m.skrank")
