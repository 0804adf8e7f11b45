"""Loaders of public datasets, on miniature copies of each dataset's published layout;
every broken layout or file names its problem (and the file)."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from skrank.datasets import (
    coco_annotations_file,
    load_adience,
    load_ava,
    load_coco_counts,
    load_hci,
    load_koniq10k,
    load_utkface,
)
from skrank.datasets._adience import _adience_group


def _jpeg(path: Path, shade: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (shade, 255 - shade, 64)).save(path, "JPEG")
    return path


def _paths(folder: Path, names) -> list[str]:
    return [str(folder / name) for name in names]


def _split_file(path: Path, train, test) -> Path:
    """A split file as the reference code releases them: {"train_id": [...], "test_id": [...]}."""
    path.write_text(json.dumps({"train_id": list(train), "test_id": list(test)}))
    return path


def _messages(record) -> list[str]:
    return [str(w.message) for w in record]


def _splits(frame) -> list:
    """The ``split`` column, None where it is missing."""
    return [value if isinstance(value, str) else None for value in frame["split"]]


# ---------------------------------------------------------------------------------------
# KonIQ-10k
# ---------------------------------------------------------------------------------------

KONIQ_SCORES = "koniq10k_scores_and_distributions.csv"
KONIQ_SETS = "koniq10k_distributions_sets.csv"
# Real rows: vote counts c1..c5 and MOS on 1-5 (scores file); the split file repeats them
# as fractions with a MOS on 0-100. 10058760545.jpg is listed but not on disk.
KONIQ_ROWS = [
    ("10004473376.jpg", (0, 0, 25, 73, 7), 3.828571428571, 77.3836206897, "training"),
    ("10007357496.jpg", (0, 3, 45, 47, 1), 3.479166666667, 68.7285714286, "test"),
    ("10043785683.jpg", (0, 0, 46, 60, 0), 3.566037735849, 71.2043269231, "validation"),
    ("10050349236.jpg", (6, 69, 27, 0, 0), 2.205882352941, 30.9418103448, "test"),
    ("10058760545.jpg", (45, 48, 7, 0, 0), 1.620000000000, 15.2293577982, "training"),
]


def _koniq(root: Path, resolution: str = "1024x768", sets: bool = True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    scores = ['"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"']
    split = ["image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set"]
    for name, counts, mos, zscore, subset in KONIQ_ROWS:
        total = sum(counts)
        scores.append(f"{name},{','.join(map(str, counts))},{total},{mos},0.55,{zscore}")
        fractions = ",".join(str(c / total) for c in counts)
        split.append(f"{name},{fractions},{total},{zscore},0.55,{subset}")
    (root / KONIQ_SCORES).write_text("\n".join(scores) + "\n")
    if sets:
        (root / KONIQ_SETS).write_text("\n".join(split) + "\n")
    for name, *_ in KONIQ_ROWS[:-1]:
        _jpeg(root / resolution / name)
    return root


def test_koniq10k_frame_targets_and_official_split(tmp_path):
    root = _koniq(tmp_path / "koniq10k")
    with pytest.warns(UserWarning, match=r"1 of 5 images .* missing"):
        koniq = load_koniq10k(root)
    frame = koniq.frame
    names = [row[0] for row in KONIQ_ROWS[:-1]]
    assert list(frame.columns[:3]) == ["image", "target", "image_name"]
    assert frame["image"].tolist() == _paths(root / "1024x768", names)
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in frame["image"])
    # The target is the 1-5 MOS of the scores file, not the 0-100 MOS of the split file.
    np.testing.assert_allclose(koniq.target, [row[2] for row in KONIQ_ROWS[:-1]])
    np.testing.assert_allclose(frame["MOS_zscore"], [row[3] for row in KONIQ_ROWS[:-1]])
    assert frame["split"].tolist() == ["train", "test", "val", "test"]
    assert frame["c_total"].tolist() == [105, 96, 106, 102]
    assert koniq.instruction == "Sort the photos by image quality."
    assert "Hosu" in koniq.DESCR and "7,058" in koniq.DESCR


def test_koniq10k_half_resolution_zscore_target_without_split_file(tmp_path):
    root = _koniq(tmp_path, resolution="512x384", sets=False)
    with pytest.warns(UserWarning, match="missing"):
        koniq = load_koniq10k(root, target="MOS_zscore")
    assert koniq.frame["image"].iloc[0] == str(root / "512x384" / "10004473376.jpg")
    np.testing.assert_allclose(koniq.target, [row[3] for row in KONIQ_ROWS[:-1]])
    assert "split" not in koniq.frame


def _drop_mos_column(root: Path) -> None:
    path = root / KONIQ_SCORES
    lines = path.read_text().splitlines()
    path.write_text("\n".join(",".join(line.split(",")[:7]) for line in lines) + "\n")


def _drop_set_column(root: Path) -> None:
    path = root / KONIQ_SETS
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")


def _remove_images(root: Path) -> None:
    for path in (root / "1024x768").iterdir():
        path.unlink()


@pytest.mark.parametrize(
    ("break_layout", "kwargs", "error", "match"),
    [
        (lambda r: (r / KONIQ_SCORES).unlink(), {}, FileNotFoundError, KONIQ_SCORES),
        (_drop_mos_column, {}, ValueError, r"no column\(s\) \['MOS'\]"),
        (_drop_set_column, {}, ValueError, rf"{KONIQ_SETS} has no column\(s\) \['set'\]"),
        (lambda r: None, {"resolution": "512x384"}, FileNotFoundError, "512x384"),
        (_remove_images, {}, FileNotFoundError, "none of the 5 images"),
        (lambda r: None, {"resolution": "800x600"}, ValueError, "resolution must be"),
        (lambda r: None, {"target": "SD"}, ValueError, "target must be"),
    ],
)
def test_koniq10k_wrong_layout_names_the_problem(tmp_path, break_layout, kwargs, error, match):
    root = _koniq(tmp_path)
    break_layout(root)
    with pytest.raises(error, match=match) as info:
        load_koniq10k(root, **kwargs)
    if error is not ValueError or "column" in match:
        assert "Expected KonIQ-10k layout" in str(info.value)


def test_koniq10k_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_koniq10k(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------
# AVA
# ---------------------------------------------------------------------------------------

# The first lines of the real AVA.txt; 954113.jpg is missing on disk, as a few files are in
# real downloads, and one line ends with a stray space.
AVA_LINES = [
    "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396",
    "2 953958 10 7 15 26 26 21 10 8 1 2 1 21 1396 ",
    "3 954184 0 0 4 8 41 56 10 3 4 0 0 0 1396",
    "4 954113 0 1 4 6 48 37 23 5 2 2 15 21 1396",
    "5 953980 0 3 6 15 57 39 6 1 1 1 22 38 1396",
]


def _ava(root: Path, lines=AVA_LINES) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "AVA.txt").write_text("\n".join(lines) + "\n")
    lists = root / "aesthetics_image_lists"
    lists.mkdir()
    (lists / "generic_test.jpgl").write_text("629797\n953958\n953980\n902498\n")
    (lists / "generic_ls_train.jpgl").write_text("953619\n954184\n")
    for image_id in (953619, 953958, 954184, 953980):
        _jpeg(root / "images" / f"{image_id}.jpg")
    return root


def test_ava_mean_scores_votes_and_generic_test_split(tmp_path):
    root = _ava(tmp_path / "AVA_dataset")
    with pytest.warns(UserWarning, match=r"1 of 5 images listed in AVA.txt are missing"):
        ava = load_ava(root)
    frame = ava.frame
    ids = [953619, 953958, 954184, 953980]
    assert frame["image_id"].tolist() == ids
    assert frame["image"].tolist() == _paths(root / "images", [f"{i}.jpg" for i in ids])
    votes = np.array([line.split()[2:12] for line in AVA_LINES], dtype=float)[[0, 1, 2, 4]]
    expected = votes @ np.arange(1, 11) / votes.sum(axis=1)
    np.testing.assert_allclose(ava.target, expected)
    assert ava.target[0] == pytest.approx(699 / 124)
    assert frame["n_votes"].tolist() == [124, 126, 126, 129]
    assert frame["split"].tolist() == ["train", "test", "train", "test"]
    assert frame.loc[2, ["semantic_tag_1", "semantic_tag_2"]].tolist() == [0, 0]
    assert (frame["challenge_id"] == 1396).all()
    assert ava.instruction == "Sort the photos by aesthetic quality."
    assert "Murray" in ava.DESCR


def test_ava_without_lists_and_with_an_unvoted_image(tmp_path):
    lines = AVA_LINES[:3] + ["6 953999 0 0 0 0 0 0 0 0 0 0 0 0 1396"]
    root = _ava(tmp_path, lines)
    _jpeg(root / "images" / "953999.jpg")
    for path in (root / "aesthetics_image_lists").iterdir():
        path.unlink()
    with pytest.warns(UserWarning, match="1 images in AVA.txt have no vote"):
        ava = load_ava(root)
    assert ava.frame["image_id"].tolist() == [953619, 953958, 954184]
    assert "split" not in ava.frame


@pytest.mark.parametrize(
    ("break_layout", "error", "match"),
    [
        (lambda r: (r / "AVA.txt").unlink(), FileNotFoundError, "AVA.txt"),
        (lambda r: (r / "images").rename(r / "photos"), FileNotFoundError, "images"),
        (
            lambda r: (r / "AVA.txt").write_text("1 953619 0 1 5 17 38 36 15 6 5 1 1 22\n"),
            ValueError,
            "AVA.txt has 14 columns, expected 15",
        ),
        (
            lambda r: (r / "AVA.txt").write_text("1 953619.jpg 0 1 5 17 38 36 15 6 5 1 1 22 9\n"),
            ValueError,
            "cannot parse AVA.txt",
        ),
    ],
)
def test_ava_wrong_layout_names_the_problem(tmp_path, break_layout, error, match):
    root = _ava(tmp_path)
    break_layout(root)
    with pytest.raises(error, match=match) as info:
        load_ava(root)
    assert "Expected AVA layout" in str(info.value)


# ---------------------------------------------------------------------------------------
# Adience
# ---------------------------------------------------------------------------------------

ADIENCE_HEADER = (
    "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\t"
    "tilt_ang\tfiducial_yaw_angle\tfiducial_score"
)
# (fold, user_id, original_image, face_id, age, gender), with the odd age labels of the
# real fold files: the typo "(25, 23)", single ages, off-group ranges and "None".
ADIENCE_ROWS = [
    (0, "30601258@N03", "10399646885_67c7d20df9_o.jpg", 1, "(25, 23)", "f"),
    (0, "30601258@N03", "10424815813_e94629b1ec_o.jpg", 2, "(25, 32)", "m"),
    (0, "30601258@N03", "10424595844_1009c687e4_o.jpg", 4, "(38, 43)", "f"),
    (1, "7153718@N04", "11598838386_349a0d4849_o.jpg", 1201, "None", "u"),
    (1, "7153718@N04", "11598166203_c70bb34c80_o.jpg", 1202, "35", "m"),
    (1, "7153718@N04", "11597832536_a5a1d8b1ab_o.jpg", 1203, "(38, 42)", "f"),
    (2, "64504106@N06", "10943664445_6bb7a1a47d_o.jpg", 1300, "13", "f"),
    (2, "64504106@N06", "10943710264_87e5431ac8_o.jpg", 1301, "(8, 23)", "m"),
    (3, "10044155@N06", "8669349586_9c58f3e81a_o.jpg", 1400, "2", ""),
    (3, "10044155@N06", "8670452353_a1c06e4f0c_o.jpg", 1401, "(0, 2)", "u"),
    (4, "113445054@N07", "11763777465_11d01c34ce_o.jpg", 1500, "(60, 100)", "f"),
    (4, "113445054@N07", "11764005785_fe6ab6ab94_o.jpg", 1501, "(8, 12)", "m"),
]
# Listed in fold 4 but absent from the image folder.
ADIENCE_MISSING = (4, "113445054@N07", "11764005786_0000000000_o.jpg", 1502, "(4, 6)", "f")


def _adience(root: Path, folder="aligned", prefix="landmark_aligned_face") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for k in range(5):
        lines = [ADIENCE_HEADER]
        for fold, user, image, face, age, gender in ADIENCE_ROWS + [ADIENCE_MISSING]:
            if fold == k:
                lines.append(f"{user}\t{image}\t{face}\t{age}\t{gender}\t0\t4\t86\t87\t-5\t0\t94")
        (root / f"fold_{k}_data.txt").write_text("\n".join(lines) + "\n")
    for _, user, image, face, *_ in ADIENCE_ROWS:
        _jpeg(root / folder / user / f"{prefix}.{face}.{image}")
    return root


def test_adience_groups_folds_and_paths(tmp_path):
    root = _adience(tmp_path / "adience")
    with pytest.warns(UserWarning) as record:
        adience = load_adience(root)
    messages = [str(w.message) for w in record]
    assert any(
        "4 rows have an age label outside the 8 groups" in m
        and "3 rows with an age that fits no single group were dropped" in m
        and "'None': 1" in m
        and "'(8, 23)': 1" in m
        for m in messages
    )
    assert any("1 of 10 images listed in fold_*_data.txt are missing" in m for m in messages)

    frame = adience.frame
    kept = [r for r in ADIENCE_ROWS if r[4] not in ("None", "35", "(8, 23)")]
    assert frame["image"].tolist() == [
        str(root / "aligned" / user / f"landmark_aligned_face.{face}.{image}")
        for _, user, image, face, *_ in kept
    ]
    assert frame["target"].tolist() == [4, 4, 5, 5, 2, 0, 0, 7, 2]
    assert adience.target.dtype.kind == "i"
    assert frame["fold"].tolist() == [0, 0, 0, 1, 2, 3, 3, 4, 4]
    assert frame["age"].tolist() == [r[4] for r in kept]
    assert frame["age_group"].tolist()[:3] == ["(25, 32)", "(25, 32)", "(38, 43)"]
    assert frame["gender"].tolist() == [r[5] for r in kept]
    assert frame["face_id"].tolist() == [r[3] for r in kept]
    assert adience.instruction == "Sort the faces by age."
    assert "5-fold" in adience.DESCR and "Eidinger" in adience.DESCR


def test_adience_coarse_faces(tmp_path):
    root = _adience(tmp_path, folder="faces", prefix="coarse_tilt_aligned_face")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        adience = load_adience(root, alignment="coarse")
    first = adience.frame["image"].iloc[0]
    expected = "coarse_tilt_aligned_face.1.10399646885_67c7d20df9_o.jpg"
    assert first == str(root / "faces" / "30601258@N03" / expected)
    assert len(adience.frame) == 9


@pytest.mark.parametrize(
    ("label", "group"),
    [
        ("(0, 2)", 0),
        ("(60, 100)", 7),
        ("(25, 23)", 4),
        ("(27, 32)", 4),
        ("(38, 42)", 5),
        ("2", 0),
        ("13", 2),
        ("29", 4),
        ("32", 4),
        ("42", 5),
        ("3", None),
        ("22", None),
        ("34", None),
        ("57", None),
        ("(8, 23)", None),
        ("(38, 48)", None),
        ("(43, 38)", None),
        ("None", None),
        ("", None),
    ],
)
def test_adience_age_label_table(label, group):
    assert _adience_group(label) == group


def _drop_age_column(root: Path) -> None:
    path = root / "fold_2_data.txt"
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    path.write_text("\n".join("\t".join(cells[:3] + cells[4:]) for cells in lines) + "\n")


@pytest.mark.parametrize(
    ("break_layout", "kwargs", "error", "match"),
    [
        (lambda r: (r / "fold_3_data.txt").unlink(), {}, FileNotFoundError, "fold_3_data.txt"),
        (_drop_age_column, {}, ValueError, r"fold_2_data.txt has no column\(s\) \['age'\]"),
        (lambda r: None, {"alignment": "coarse"}, FileNotFoundError, "faces"),
        (lambda r: None, {"frontal": True}, FileNotFoundError, "fold_frontal_0_data.txt"),
        (lambda r: None, {"alignment": "tilted"}, ValueError, "alignment must be"),
    ],
)
def test_adience_wrong_layout_names_the_problem(tmp_path, break_layout, kwargs, error, match):
    root = _adience(tmp_path)
    break_layout(root)
    with pytest.raises(error, match=match) as info:
        load_adience(root, **kwargs)
    if "alignment must be" not in match:
        assert "Expected Adience layout" in str(info.value)


# ---------------------------------------------------------------------------------------
# Historical Color Images
# ---------------------------------------------------------------------------------------

HCI_DECADES = ("1930s", "1940s", "1950s", "1960s", "1970s")


def _hci(root: Path) -> Path:
    database = root / "HistoricalColor-ECCV2012" / "data" / "imgs" / "decade_database"
    for decade in HCI_DECADES:
        for i in (2, 1):
            _jpeg(database / decade / f"{decade[:4]}_{i}.jpg")
    (database / "1950s" / ".DS_Store").write_bytes(b"\0")
    (database / "1950s" / "Thumbs.db").write_bytes(b"\0")
    return database


def test_hci_decades_from_any_level_of_the_archive(tmp_path):
    database = _hci(tmp_path)
    hci = load_hci(tmp_path)
    frame = hci.frame
    assert frame["image"].tolist() == [
        str(database / d / f"{d[:4]}_{i}.jpg") for d in HCI_DECADES for i in (1, 2)
    ]
    assert hci.target.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert frame["decade"].tolist() == [1930, 1930, 1940, 1940, 1950, 1950, 1960, 1960, 1970, 1970]
    assert hci.instruction == "Sort the photos by the decade they were taken in."
    assert "Palermo" in hci.DESCR
    for level in (tmp_path / "HistoricalColor-ECCV2012", database):
        assert load_hci(level).frame.equals(frame)


def _empty_decade(database: Path) -> None:
    for path in (database / "1960s").iterdir():
        path.unlink()


@pytest.mark.parametrize(
    ("break_layout", "match"),
    [
        (lambda d: os.rename(d / "1950s", d / "fifties"), r"decade folder\(s\) \['1950s'\]"),
        (lambda d: os.rename(d, d.with_name("other")), "no decade folder"),
        (_empty_decade, "no image found in .*1960s"),
    ],
)
def test_hci_wrong_layout_names_the_problem(tmp_path, break_layout, match):
    break_layout(_hci(tmp_path))
    with pytest.raises(FileNotFoundError, match=match) as info:
        load_hci(tmp_path)
    assert "Expected HCI layout" in str(info.value)


# ---------------------------------------------------------------------------------------
# UTKFace
# ---------------------------------------------------------------------------------------

UTK_GOOD = [
    "116_1_0_20170120134921760.jpg.chip.jpg",
    "1_0_0_20161219140623097.jpg.chip.jpg",
    "26_1_2_20170116174525125.jpg.chip.jpg",
]
# Real malformed names: three lack the race field, one lacks the dot before "jpg".
UTK_BAD = [
    "39_1_20170116174525125.jpg.chip.jpg",
    "55_0_0_20170116232725357jpg",
    "61_1_20170109142408075.jpg.chip.jpg",
    "61_1_20170109150557335.jpg.chip.jpg",
]


def test_utkface_ages_from_file_names(tmp_path):
    folder = tmp_path / "UTKFace"
    for name in UTK_GOOD + UTK_BAD:
        _jpeg(folder / name)
    (folder / "landmark_list.txt").write_text("not an image\n")
    with pytest.warns(UserWarning, match="skipped 4 of 7 files") as record:
        utk = load_utkface(tmp_path)
    assert "39_1_20170116174525125.jpg.chip.jpg" in str(record[0].message)
    frame = utk.frame
    assert frame["image"].tolist() == _paths(folder, UTK_GOOD)
    assert utk.target.tolist() == [116, 1, 26]
    assert frame["gender"].tolist() == [1, 0, 1]
    assert frame["race"].tolist() == [0, 0, 2]
    assert frame["date"].tolist() == ["20170120134921760", "20161219140623097", "20170116174525125"]
    assert utk.instruction == "Sort the faces by age."
    assert "Zhang" in utk.DESCR


def test_utkface_flat_folder_of_in_the_wild_photos(tmp_path):
    _jpeg(tmp_path / "23_0_3_20170119171219876.jpg")
    _jpeg(tmp_path / "9_1_4_20170103200814791.JPG")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        utk = load_utkface(tmp_path)
    assert sorted(utk.target.tolist()) == [9, 23]


def test_utkface_wrong_layout_names_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_utkface(tmp_path / "UTKFace")
    _jpeg(tmp_path / "UTKFace" / "photo.jpg")
    with pytest.raises(FileNotFoundError, match=r"no image named \[age\]_\[gender\]") as info:
        load_utkface(tmp_path)
    assert "Expected UTKFace layout" in str(info.value)


# ---------------------------------------------------------------------------------------
# The reference code's split files (examples/<dataset>-split.json)
# ---------------------------------------------------------------------------------------


def test_koniq10k_reference_split_file_replaces_the_official_split(tmp_path):
    root = _koniq(tmp_path / "koniq10k")
    # koniqa-split.json names images without ".jpg"; 10058760545 is listed but not on disk.
    split = _split_file(
        tmp_path / "koniqa-split.json",
        ["10004473376", "10007357496", "10058760545"],
        ["10050349236"],
    )
    with pytest.warns(UserWarning) as record:
        koniq = load_koniq10k(root, split_file=split)
    assert any(
        "1 of the 4 ids in split file koniqa-split.json match no loaded image" in m
        for m in _messages(record)
    )
    # 10043785683 is in the official validation set but not in the split file.
    assert _splits(koniq.frame) == ["train", "train", None, "test"]


def test_koniq10k_split_file_without_the_official_sets_file(tmp_path):
    root = _koniq(tmp_path, sets=False)
    split = _split_file(tmp_path / "s.json", ["10004473376", "10043785683"], ["10007357496"])
    with pytest.warns(UserWarning, match="images listed in"):
        koniq = load_koniq10k(root, split_file=split)
    assert _splits(koniq.frame) == ["train", "test", "train", None]


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        (None, FileNotFoundError, r"split file .*nowhere.json' not found"),
        ("{not json", ValueError, "is not JSON"),
        ('["10004473376"]', ValueError, "must hold the lists 'train_id' and 'test_id'"),
        ('{"train": [], "test": []}', ValueError, r"found \['test', 'train'\]"),
        (
            '{"train_id": ["10004473376"], "test_id": ["10004473376"]}',
            ValueError,
            r"1 id\(s\) in both train_id and test_id",
        ),
        ('{"train_id": [{"id": 1}], "test_id": []}', ValueError, "ids are strings"),
        # AVA ids given to KonIQ-10k: nothing matches.
        ('{"train_id": ["953619"], "test_id": ["953958"]}', ValueError, "none of the 2 ids"),
    ],
)
def test_split_file_errors_name_the_problem(tmp_path, content, error, match):
    root = _koniq(tmp_path / "koniq10k")
    path = tmp_path / ("nowhere.json" if content is None else "split.json")
    if content is not None:
        path.write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(error, match=match) as info:
            load_koniq10k(root, split_file=path)
    assert "Expected KonIQ-10k layout" in str(info.value)
    assert '{"train_id": [id, ...], "test_id": [id, ...]}' in str(info.value)


def test_ava_reference_split_file_replaces_the_generic_test_list(tmp_path):
    root = _ava(tmp_path / "AVA_dataset")
    # AVA-split.json ids are strings; integers are read too. 954113 has no image file,
    # 953980 is in no list.
    split = _split_file(tmp_path / "AVA-split.json", ["953619", 954184, "954113"], ["953958"])
    with pytest.warns(UserWarning) as record:
        ava = load_ava(root, split_file=split)
    messages = _messages(record)
    assert any("1 of 5 images listed in AVA.txt are missing" in m for m in messages)
    assert any("1 of the 4 ids in split file AVA-split.json match no" in m for m in messages)
    assert ava.frame["image_id"].tolist() == [953619, 953958, 954184, 953980]
    assert _splits(ava.frame) == ["train", "test", "train", None]


@pytest.mark.parametrize(
    ("folder", "prefix", "alignment"),
    [
        ("aligned", "landmark_aligned_face", "landmark"),
        ("faces", "coarse_tilt_aligned_face", "coarse"),
    ],
)
def test_adience_reference_split_file_on_either_alignment(tmp_path, folder, prefix, alignment):
    root = _adience(tmp_path, folder=folder, prefix=prefix)
    # Adience-split.json names the landmark-aligned files without ".jpg"; face 1502 is
    # listed in fold 4 but has no image.
    train = [
        "landmark_aligned_face.1.10399646885_67c7d20df9_o",
        "landmark_aligned_face.2.10424815813_e94629b1ec_o",
        "landmark_aligned_face.1300.10943664445_6bb7a1a47d_o",
    ]
    test = [
        "landmark_aligned_face.1500.11763777465_11d01c34ce_o",
        "landmark_aligned_face.1502.11764005786_0000000000_o",
    ]
    split = _split_file(tmp_path / "Adience-split.json", train, test)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        adience = load_adience(root, alignment=alignment, split_file=split)
    assert any("1 of the 5 ids in split file" in m for m in _messages(record))
    frame = adience.frame
    assert frame["face_id"].tolist() == [1, 2, 4, 1203, 1300, 1400, 1401, 1500, 1501]
    assert _splits(frame) == [
        "train", "train", None, None, "train", None, None, "test", None
    ]  # fmt: skip
    assert frame["fold"].tolist() == [0, 0, 0, 1, 2, 3, 3, 4, 4]  # the folds are kept


HCI_HEX = ("ca0b62f885d19035fc75d71edd7aa5a2", "8d29c20ff28fa71addd1c8f3383c5770")


@pytest.mark.parametrize(
    "name",
    [
        "decade_{hex}.jpg",  # the reference's ids are decade_<hex>
        "{hex}.jpg",
        "{decade}_decade_{hex}.jpg",  # as L2RCLIP's renamed copies
    ],
)
def test_hci_reference_split_file_matched_by_name(tmp_path, name):
    database = tmp_path / "decade_database"
    for d, decade in enumerate(HCI_DECADES):
        for i, hex_ in enumerate(HCI_HEX):
            _jpeg(database / decade / name.format(hex=f"{d}{hex_[1:]}", decade=decade), 40 * i)
    ids = [f"decade_{d}{hex_[1:]}" for d in range(5) for hex_ in HCI_HEX]
    split = _split_file(tmp_path / "HCI-split.json", ids[0::2], ids[1::2] + ["decade_unknown"])
    with pytest.warns(UserWarning, match="1 of the 11 ids in split file HCI-split.json"):
        hci = load_hci(tmp_path, split_file=split)
    names = [Path(p).name for p in hci.frame["image"]]
    expected = {
        name.format(hex=f"{d}{hex_[1:]}", decade=decade): side
        for d, decade in enumerate(HCI_DECADES)
        for hex_, side in zip(HCI_HEX, ("train", "test"))
    }
    assert _splits(hci.frame) == [expected[n] for n in names]


def test_hci_reference_split_file_matched_by_content(tmp_path):
    database = _hci(tmp_path)
    paths = sorted(database.glob("*/*.jpg"))
    for k, path in enumerate(paths):
        _jpeg(path, shade=20 * k)  # distinct bytes
    ids = ["decade_" + hashlib.md5(p.read_bytes()).hexdigest() for p in paths]
    split = _split_file(tmp_path / "HCI-split.json", ids[:8], ids[8:])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hci = load_hci(tmp_path, split_file=split)
    by_path = dict(zip(map(str, paths), ["train"] * 8 + ["test"] * 2))
    assert _splits(hci.frame) == [by_path[p] for p in hci.frame["image"]]


def test_hci_split_file_of_another_dataset(tmp_path):
    _hci(tmp_path)
    split = _split_file(tmp_path / "koniqa-split.json", ["2017266"], ["826373"])
    with pytest.raises(ValueError, match="none of the 2 ids in split file koniqa-split.json"):
        load_hci(tmp_path, split_file=split)


# ---------------------------------------------------------------------------------------
# COCO object counts
# ---------------------------------------------------------------------------------------

COCO_CATEGORIES = [
    {"supercategory": "person", "id": 1, "name": "person"},
    {"supercategory": "animal", "id": 19, "name": "horse"},
    {"supercategory": "food", "id": 53, "name": "apple"},
]
# (image id, {category id: separate instances}, category ids with a crowd annotation):
# images of the reference's example list (val2017 horses and apples). 382088 has two
# horses and a crowd of horses; 389381 is annotated but not on disk.
COCO_IMAGES = [
    (360661, {19: 3}, ()),
    (16228, {19: 1}, ()),
    (340175, {53: 3, 19: 1}, ()),
    (34873, {53: 1}, ()),
    (382088, {19: 2}, (19,)),
    (389381, {53: 2}, ()),
]


def _coco(root: Path, images=COCO_IMAGES, split="val2017") -> tuple[Path, Path]:
    entries, annotations = [], []
    for image_id, instances, crowds in images:
        name = f"{image_id:012d}.jpg"
        entries.append(
            {"license": 3, "file_name": name, "coco_url": f"http://images.cocodataset.org/{split}/{name}",
             "height": 480, "width": 640, "date_captured": "2013-11-14 17:02:52", "id": image_id}
        )  # fmt: skip
        if image_id != 389381:
            _jpeg(root / split / name)
        for category_id, n in instances.items():
            for _ in range(n):
                annotations.append(
                    {"segmentation": [[10.0, 10.0, 20.0, 10.0, 20.0, 20.0]], "area": 50.0,
                     "iscrowd": 0, "image_id": image_id, "bbox": [10.0, 10.0, 10.0, 10.0],
                     "category_id": category_id, "id": 900000 + len(annotations)}
                )  # fmt: skip
        for category_id in crowds:
            annotations.append(
                {"segmentation": {"counts": [0, 100], "size": [480, 640]}, "area": 900.0,
                 "iscrowd": 1, "image_id": image_id, "bbox": [0.0, 0.0, 30.0, 30.0],
                 "category_id": category_id, "id": 900000 + len(annotations)}
            )  # fmt: skip
    content = {
        "info": {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017},
        "licenses": [{"url": "http://creativecommons.org/licenses/by/2.0/", "id": 3}],
        "images": entries,
        "annotations": annotations,
        "categories": COCO_CATEGORIES,
    }
    path = root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return root / split, path


def test_coco_counts_per_category_with_crowds_dropped(tmp_path):
    images, annotations = _coco(tmp_path / "coco")
    with pytest.warns(UserWarning, match="1 of 5 images annotated in instances_val2017.json"):
        coco = load_coco_counts(images, annotations)
    frame = coco.frame
    assert list(frame.columns) == [
        "image", "target", "instruction", "category", "category_id", "image_id", "file_name"
    ]  # fmt: skip
    # Categories in the file's order, images by id; 382088 holds a crowd of horses.
    assert frame["category"].tolist() == ["horse", "horse", "horse", "apple", "apple"]
    assert frame["image_id"].tolist() == [16228, 340175, 360661, 34873, 340175]
    assert coco.target.tolist() == [1, 1, 3, 1, 3]
    assert frame["instruction"].tolist()[:1] == ["Rank the numbers of horse."]
    assert frame["image"].tolist()[0] == str(images / "000000016228.jpg")
    assert coco.categories == ["horse", "apple"]  # person has no instance
    assert coco.instructions == ["Rank the numbers of horse.", "Rank the numbers of apple."]
    assert coco.instruction is None
    assert "Lin" in coco.DESCR and "iscrowd" in coco.DESCR


def test_coco_counts_crowds_ignored_categories_and_max_count(tmp_path):
    images, annotations = _coco(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ignored = load_coco_counts(images, annotations, crowd="ignore", categories=["horse"])
        capped = load_coco_counts(images, annotations, categories="apple", max_count=2)
    assert ignored.frame["image_id"].tolist() == [16228, 340175, 360661, 382088]
    assert ignored.target.tolist() == [1, 1, 3, 2]  # the crowd region is not counted
    assert capped.frame["image_id"].tolist() == [34873] and capped.categories == ["apple"]


def _coco_json(annotations: Path, edit) -> None:
    content = json.loads(annotations.read_text())
    edit(content)
    annotations.write_text(json.dumps(content))


@pytest.mark.parametrize(
    ("break_layout", "kwargs", "error", "match"),
    [
        (lambda i, a: a.unlink(), {}, FileNotFoundError, "instances_val2017.json"),
        (lambda i, a: a.write_text("{"), {}, ValueError, "is not JSON"),
        (
            lambda i, a: _coco_json(a, lambda c: c.pop("annotations")),
            {},
            ValueError,
            r"no list\(s\) \['annotations'\]",
        ),
        (
            lambda i, a: _coco_json(a, lambda c: c["annotations"][0].pop("image_id")),
            {},
            ValueError,
            "has no 'image_id'",
        ),
        (
            lambda i, a: _coco_json(a, lambda c: c["images"].pop(0)),
            {},
            ValueError,
            r"refer to 1 image id\(s\) missing from its 'images' \(e.g. 360661\)",
        ),
        (lambda i, a: None, {"categories": ["zebra"]}, ValueError, r"\['zebra'\] are not in"),
        (lambda i, a: None, {"max_count": 0}, ValueError, "max_count must be"),
        (lambda i, a: None, {"crowd": "count"}, ValueError, "crowd must be"),
        (lambda i, a: None, {"categories": ["person"]}, ValueError, "no image in"),
        (
            lambda i, a: [p.unlink() for p in i.iterdir()],
            {},
            FileNotFoundError,
            "none of the 5 annotated images",
        ),
    ],
)
def test_coco_counts_wrong_layout_names_the_problem(tmp_path, break_layout, kwargs, error, match):
    images, annotations = _coco(tmp_path)
    break_layout(images, annotations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(error, match=match) as info:
            load_coco_counts(images, annotations, **kwargs)
    if "Expected" in str(info.value) or error is FileNotFoundError:
        assert "Expected COCO layout" in str(info.value)


def _coco_rem(datasets: Path) -> tuple[Path, Path]:
    """kdexd/coco-rem's layout: COCO's images (datasets/coco/val2017/) and COCO-ReM's
    refined annotations of them, datasets/coco_rem/instances_valrem.json: compressed-RLE
    masks, a crowd turned into separate horses (382088: 3 instead of 2 and a crowd) and
    the apples COCO 2017 missed on 16228."""
    images, _ = _coco(datasets / "coco")
    content = json.loads((datasets / "coco" / "annotations" / "instances_val2017.json").read_text())
    content["annotations"] = [
        a for a in content["annotations"] if not (a["image_id"] == 382088 and a["iscrowd"])
    ]
    added = [(382088, 19), (16228, 53), (16228, 53)]
    for k, (image_id, category_id) in enumerate(added):
        content["annotations"].append(
            {"segmentation": {"size": [480, 640], "counts": "Xc0b0R7"}, "area": 120.0,
             "iscrowd": 0, "image_id": image_id, "bbox": [1.0, 1.0, 9.0, 9.0],
             "category_id": category_id, "id": 2_000_000 + k}
        )  # fmt: skip
    for a in content["annotations"]:
        if isinstance(a["segmentation"], list):
            a["segmentation"] = {"size": [480, 640], "counts": "Wc0b0R7"}
    path = datasets / "coco_rem" / "instances_valrem.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(content))
    return images, path.parent


def test_coco_rem_annotations_count_the_same_images(tmp_path):
    images, rem = _coco_rem(tmp_path / "datasets")
    annotations = coco_annotations_file(rem, "val2017", source="coco-rem")
    assert annotations == rem / "instances_valrem.json"
    with pytest.warns(UserWarning, match="1 of 6 images annotated in instances_valrem.json"):
        coco = load_coco_counts(images, annotations)
    frame = coco.frame
    assert frame["category"].tolist() == ["horse"] * 4 + ["apple"] * 3
    assert frame["image_id"].tolist() == [16228, 340175, 360661, 382088, 16228, 34873, 340175]
    assert coco.target.tolist() == [1, 1, 3, 3, 2, 1, 3]
    assert frame["image"].tolist()[0] == str(images / "000000016228.jpg")  # COCO's images
    assert "COCO-ReM" in coco.DESCR


def test_coco_annotations_file_in_either_place(tmp_path):
    images, annotations = _coco(tmp_path / "coco")  # coco/annotations/instances_val2017.json
    assert coco_annotations_file(tmp_path / "coco", "val2017") == annotations
    assert coco_annotations_file(annotations.parent, "val2017") == annotations
    rem = tmp_path / "coco-rem" / "annotations"
    rem.mkdir(parents=True)
    (rem / "instances_trainrem.json").write_text("{}")
    found = coco_annotations_file(tmp_path / "coco-rem", "train2017", source="coco-rem")
    assert found == rem / "instances_trainrem.json"


@pytest.mark.parametrize(
    ("split", "source", "error", "match"),
    [
        ("val2017", "coco-rem", FileNotFoundError, r"instances_valrem.json.zip is there: unzip"),
        ("train2017", "coco-rem", FileNotFoundError, "instances_trainrem.json is in neither"),
        ("train2017", "coco", FileNotFoundError, "Expected COCO layout"),
        ("val2014", "coco-rem", ValueError, "COCO-ReM annotates the 2017 splits only"),
        ("val2017", "lvis", ValueError, "source must be one of"),
    ],
)
def test_coco_annotations_file_names_the_problem(tmp_path, split, source, error, match):
    (tmp_path / "instances_valrem.json.zip").write_bytes(b"PK")
    with pytest.raises(error, match=match):
        coco_annotations_file(tmp_path, split, source=source)


# ------------------------------------------------------- files that name their problems (issue 29)


def _loader_tree(kind: str, root: pathlib.Path):
    """A small dataset tree as the tests above build them; its loader."""
    if kind == "koniq":
        return _koniq(root), load_koniq10k
    if kind == "ava":
        return _ava(root), load_ava
    if kind == "adience":
        return _adience(root), load_adience
    raise ValueError(kind)


def _edit(path: pathlib.Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    "kind, file, old, new, column, quoted",
    [
        ("koniq", KONIQ_SCORES, "3.828571428571", "good", "MOS", "'good'"),
        ("koniq", KONIQ_SCORES, "3.828571428571", "", "MOS", "data row 1"),  # empty: NaN
        ("koniq", KONIQ_SCORES, "3.828571428571", "inf", "MOS", "the first inf"),
        ("ava", "AVA.txt", "0 1 5 17", "0 x 5 17", "votes_2", "'x'"),
        ("ava", "AVA.txt", "0 1 5 17", "0 1.5 5 17", "votes_2", "'1.5'"),
        ("ava", "AVA.txt", "953958", "9" * 40, "image_id", "9" * 40),  # beyond int64
        ("ava", "aesthetics_image_lists/generic_test.jpgl", "953958", "x.jpg", "image_id", "x.jpg"),
    ],
)
def test_a_non_numeric_value_names_the_file_and_the_column(
    tmp_path, kind, file, old, new, column, quoted
):
    root, loader = _loader_tree(kind, tmp_path / kind)
    _edit(root / file, old, new)
    with pytest.raises(ValueError, match=f"column '{column}'") as info:
        with warnings.catch_warnings():  # a listed image is missing, as in test_loaders
            warnings.simplefilter("ignore", UserWarning)
            loader(root)
    message = str(info.value)
    assert pathlib.Path(file).name in message and "Expected" in message
    assert quoted in message
    assert len(message) < 2000


def test_a_non_numeric_face_id_of_adience_names_the_fold_file(tmp_path):
    root, _ = _loader_tree("adience", tmp_path / "adience")
    fold = sorted(root.glob("fold_*_data.txt"))[0]
    lines = fold.read_text().splitlines()
    fields = lines[1].split("\t")
    header = [h.strip() for h in lines[0].split("\t")]
    fields[header.index("face_id")] = "face"
    fold.write_text("\n".join([lines[0], "\t".join(fields), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=rf"{fold.name}: column 'face_id'.*'face'"):
        load_adience(root)


def test_a_csv_pandas_cannot_parse_names_the_file(tmp_path):
    root, loader = _loader_tree("koniq", tmp_path / "koniq")
    (root / KONIQ_SCORES).write_bytes(b'"image_name","MOS"\n"unclosed,1\n')
    with pytest.raises(ValueError, match=f"cannot parse {KONIQ_SCORES}") as info:
        loader(root)
    assert "Expected KonIQ-10k layout" in str(info.value)


def test_an_absurd_age_in_a_utkface_name_is_skipped_and_named(tmp_path):
    folder = tmp_path / "UTKFace"
    absurd = "9" * 30 + "_0_0_20170116174525125.jpg.chip.jpg"
    _jpeg(folder / "26_1_2_20170116174525125.jpg.chip.jpg")
    _jpeg(folder / absurd)
    _jpeg(folder / "151_1_2_20170116174525126.jpg.chip.jpg")
    with pytest.warns(UserWarning, match=r"skipped 2 file\(s\) whose age field is over") as rec:
        utk = load_utkface(tmp_path)
    assert absurd[:20] in str(rec[0].message)
    assert utk.target.tolist() == [26]
    (folder / "26_1_2_20170116174525125.jpg.chip.jpg").unlink()
    with pytest.raises(ValueError, match="age over 150") as info:
        load_utkface(tmp_path)
    assert "Expected UTKFace layout" in str(info.value)


@pytest.mark.parametrize(
    "content, match",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"train_id": ' + "[" * 50_000 + "]" * 50_000 + ', "test_id": []}', "nested too deeply"),
        ('{"train_id": [' + "1" * 5000 + '], "test_id": []}', "is not JSON"),
        ('{"train_id": [[["a"]]], "test_id": []}', "ids are strings"),
        (b"\xff\xfe{}", "not UTF-8"),
        ('{"train_id": ["' + "x" * 100_000 + '"], "test_id": [1.5]}', "ids are strings"),
    ],
    ids=["nested-list", "nested-ids", "huge-int", "list-id", "not-utf8", "float-id"],
)
def test_a_malformed_split_file_names_the_file(tmp_path, content, match):
    root = _koniq(tmp_path / "koniq")
    path = tmp_path / "hostile-split.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValueError, match=match) as info:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            load_koniq10k(root, split_file=path)
    message = str(info.value)
    assert "hostile-split.json" in message and "Expected KonIQ-10k layout" in message
    assert len(message) < 2000
