"""benchmarks/reproduce_paper.py end to end on miniature copies of each dataset's layout.

Each fixture tree is built in tmp_path with the real file names, columns and folders of
the published dataset (and of the reference code's split files), holding a handful of
8-pixel JPEGs; the script runs on the random ``skrank-tiny`` backbone for one epoch.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import reproduce_paper
from skrank import CLIPRanker
from skrank._estimator import presets
from skrank._estimator.params import validate_params
from tests.helpers import INSTRUCTION

TINY = ["--backbone", "skrank-tiny", "--max-epochs", "1", "--batch-size", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def script():
    return reproduce_paper


def _jpeg(path: Path, k: int) -> None:
    """A distinct 8 x 8 JPEG per ``k``: a brightness ramp the tiny backbone can see."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shade = (37 * k) % 256
    Image.new("RGB", (8, 8), (shade, 255 - shade, (91 * k) % 256)).save(path, "JPEG")


def _run(script, tmp_path, dataset, root, *extra):
    out = tmp_path / f"{dataset}.json"
    result = script.main(
        ["--dataset", dataset, "--root", str(root), *TINY, *extra, "--out", str(out)]
    )
    written = json.loads(out.read_text())
    assert written["metrics"] == result["metrics"]
    names = script.PROTOCOLS[dataset][1]
    assert list(written["metrics"]) == list(names)
    assert all(math.isfinite(v) for v in written["metrics"].values())
    assert written["paper"]["rows"][script.OURS].keys() == set(names)
    assert written["backbone"] == "skrank-tiny"
    assert written["ranker_params"]["max_epochs"] == 1
    assert written["ranker_params"]["lr"] == 5e-5  # --settings paper
    return written


# ---------------------------------------------------------------------------------------
# Fixture trees
# ---------------------------------------------------------------------------------------


def _koniq(root: Path) -> Path:
    """koniq10k_scores_and_distributions.csv, koniq10k_distributions_sets.csv, 512x384/."""
    scores = ['"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore"']
    sets = ["image_name,c1,c2,c3,c4,c5,c_total,MOS,SD,set"]
    subsets = ["training"] * 6 + ["validation"] * 2 + ["test"] * 4
    for k, subset in enumerate(subsets):
        name = f"{10004473376 + 1117 * k}.jpg"
        counts = (k % 3, 5, 20 + 3 * k, 40, k)
        total, mos = sum(counts), 1.5 + 0.25 * k
        scores.append(f"{name},{','.join(map(str, counts))},{total},{mos},0.5,{25 * mos - 20}")
        fractions = ",".join(f"{c / total:.4f}" for c in counts)
        sets.append(f"{name},{fractions},{total},{25 * mos - 20},0.5,{subset}")
        _jpeg(root / "512x384" / name, k)
    (root / "koniq10k_scores_and_distributions.csv").write_text("\n".join(scores) + "\n")
    (root / "koniq10k_distributions_sets.csv").write_text("\n".join(sets) + "\n")
    return root


def _ava(root: Path) -> tuple[Path, Path]:
    """AVA.txt, aesthetics_image_lists/generic_test.jpgl, images/, and AVA-split.json."""
    lines, train, test = [], [], []
    for k in range(14):
        image_id = 953619 + 7 * k
        votes = [(k + v) % 9 for v in range(10)]
        lines.append(f"{k + 1} {image_id} {' '.join(map(str, votes))} 1 22 1396")
        _jpeg(root / "images" / f"{image_id}.jpg", k)
        (test if k % 4 == 3 else train).append(str(image_id))
    (root / "AVA.txt").write_text("\n".join(lines) + "\n")
    (root / "aesthetics_image_lists").mkdir()
    (root / "aesthetics_image_lists" / "generic_test.jpgl").write_text(train[0] + "\n")
    split = root.parent / "AVA-split.json"
    split.write_text(json.dumps({"train_id": train[:-1], "test_id": test}))  # one unlisted
    return root, split


ADIENCE_HEADER = (
    "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\t"
    "tilt_ang\tfiducial_yaw_angle\tfiducial_score"
)
ADIENCE_AGES = ["(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)", "(38, 43)", "(48, 53)"]


def _adience(root: Path) -> Path:
    """fold_0_data.txt .. fold_4_data.txt, the near-frontal subset's
    fold_frontal_0_data.txt .. fold_frontal_4_data.txt (three of each fold's four faces:
    the last is turned away, yaw 45) and aligned/<user>/landmark_aligned_face.*."""
    root.mkdir(parents=True)
    k = 0
    for fold in range(5):
        rows, frontal = [ADIENCE_HEADER], [ADIENCE_HEADER]
        user = f"{30601258 + fold}@N03"
        for j in range(4):
            image, face = f"{10399646885 + k}_67c7d20df9_o.jpg", 1000 + k
            age = ADIENCE_AGES[(fold + 2 * j) % len(ADIENCE_AGES)]
            yaw = 45 if j == 3 else 0
            row = f"{user}\t{image}\t{face}\t{age}\tf\t0\t4\t86\t87\t-5\t{yaw}\t94"
            rows.append(row)
            if yaw == 0:
                frontal.append(row)
            _jpeg(root / "aligned" / user / f"landmark_aligned_face.{face}.{image}", k)
            k += 1
        (root / f"fold_{fold}_data.txt").write_text("\n".join(rows) + "\n")
        (root / f"fold_frontal_{fold}_data.txt").write_text("\n".join(frontal) + "\n")
    return root


def _hci(root: Path) -> Path:
    """HistoricalColor-ECCV2012/data/imgs/decade_database/<decade>/*.jpg, 3 per decade."""
    database = root / "HistoricalColor-ECCV2012" / "data" / "imgs" / "decade_database"
    for d, decade in enumerate(("1930s", "1940s", "1950s", "1960s", "1970s")):
        for i in range(3):
            _jpeg(database / decade / f"decade_{d:02d}{i:030x}.jpg", 5 * d + i)
    return root


COCO_CATEGORIES = [
    {"supercategory": "animal", "id": 19, "name": "horse"},
    {"supercategory": "food", "id": 53, "name": "apple"},
]


def _coco_split(
    root: Path, split: str, counts: dict[int, dict[int, int]], crowd=(), annotations_file=None
) -> None:
    """<root>/<split>/<12-digit id>.jpg and <root>/annotations/instances_<split>.json
    (or ``annotations_file``: the images are then left as they are)."""
    images, annotations = [], []
    for k, (image_id, per_category) in enumerate(counts.items()):
        name = f"{image_id:012d}.jpg"
        if annotations_file is None:
            _jpeg(root / split / name, k)
        images.append(
            {"license": 3, "file_name": name, "height": 8, "width": 8, "id": image_id,
             "coco_url": f"http://images.cocodataset.org/{split}/{name}"}
        )  # fmt: skip
        # COCO-ReM's masks are compressed RLE; COCO 2017's separate instances, polygons.
        outline = {"size": [8, 8], "counts": "04d0"} if annotations_file else [[0, 0, 4, 0, 4, 4]]
        for category_id, n in per_category.items():
            for _ in range(n):
                annotations.append(
                    {"segmentation": outline, "area": 8.0, "iscrowd": 0,
                     "image_id": image_id, "bbox": [0, 0, 4, 4], "category_id": category_id,
                     "id": len(annotations) + 1}
                )  # fmt: skip
    for image_id, category_id in crowd:
        annotations.append(
            {"segmentation": {"counts": [0, 64], "size": [8, 8]}, "area": 64.0, "iscrowd": 1,
             "image_id": image_id, "bbox": [0, 0, 8, 8], "category_id": category_id,
             "id": len(annotations) + 1}
        )  # fmt: skip
    content = {"info": {"year": 2017}, "licenses": [], "images": images,
               "annotations": annotations, "categories": COCO_CATEGORIES}  # fmt: skip
    path = annotations_file or root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def _coco(root: Path) -> Path:
    train = {360661 + k: {19: 1 + k % 4} for k in range(6)}
    train.update({340175 + k: {53: 1 + (k * 2) % 5} for k in range(6)})
    train[340175][19] = 2  # an image with both categories
    _coco_split(root, "train2017", train, crowd=[(360661, 19)])
    test = {16228 + k: {19: 1 + k} for k in range(3)}
    test.update({34873 + k: {53: 3 - k} for k in range(3)})
    test[16231] = {}  # an image with no horse or apple in COCO 2017's annotations
    _coco_split(root, "val2017", test)
    return root


def _coco_rem(datasets: Path) -> tuple[Path, Path]:
    """kdexd/coco-rem's layout: datasets/coco/{train2017,val2017,annotations}/ and
    datasets/coco_rem/instances_trainrem.json, instances_valrem.json: refined annotations
    of the same images (here one more horse on 360662, and 16231's two apples that
    COCO 2017 left unannotated)."""
    coco = _coco(datasets / "coco")
    train = {360661 + k: {19: 1 + k % 4 + (k == 1)} for k in range(6)}
    train.update({340175 + k: {53: 1 + (k * 2) % 5} for k in range(6)})
    train[340175][19] = 2
    rem = datasets / "coco_rem"
    _coco_split(coco, "train2017", train, crowd=[(360661, 19)],
                annotations_file=rem / "instances_trainrem.json")  # fmt: skip
    test = {16228 + k: {19: 1 + k} for k in range(3)}
    test.update({34873 + k: {53: 3 - k} for k in range(3)})
    test[16231] = {53: 2}
    _coco_split(coco, "val2017", test, annotations_file=rem / "instances_valrem.json")
    return coco, rem


# ---------------------------------------------------------------------------------------
# End to end, one test per dataset
# ---------------------------------------------------------------------------------------


def test_koniq10k_official_split(script, tmp_path, capsys):
    root = _koniq(tmp_path / "koniq10k")
    result = _run(script, tmp_path, "koniq10k", root)
    assert result["runs"][0]["n_train"] == 8 and result["runs"][0]["n_test"] == 4
    assert result["std"] is None
    printed = capsys.readouterr().out
    assert "0.919" in printed and "CLIP-IQA+" in printed  # the paper's row and a baseline


def test_koniq10k_reference_split_file(script, tmp_path):
    root = _koniq(tmp_path / "koniq10k")
    names = sorted(p.stem for p in (root / "512x384").iterdir())
    split = tmp_path / "koniqa-split.json"
    split.write_text(json.dumps({"train_id": names[3:], "test_id": names[:3]}))
    result = _run(script, tmp_path, "koniq10k", root, "--split-file", str(split))
    assert (result["runs"][0]["n_train"], result["runs"][0]["n_test"]) == (9, 3)


def test_ava_reference_split_file(script, tmp_path):
    root, split = _ava(tmp_path / "AVA_dataset")
    result = _run(script, tmp_path, "ava", root, "--split-file", str(split))
    assert (result["runs"][0]["n_train"], result["runs"][0]["n_test"]) == (10, 3)
    assert any("230,686" in n for n in result["notes"])  # sizes compared with the reference


def test_ava_needs_the_split_file(script, tmp_path):
    root, _ = _ava(tmp_path / "AVA_dataset")
    with pytest.raises(SystemExit, match="--split-file"):
        script.main(["--dataset", "ava", "--root", str(root), *TINY])


def test_adience_five_folds(script, tmp_path):
    result = _run(script, tmp_path, "adience", _adience(tmp_path / "adience"))
    assert len(result["runs"]) == 5 and [r["n_test"] for r in result["runs"]] == [4] * 5
    assert set(result["std"]) == {"accuracy", "MAE"}
    assert 0 <= result["metrics"]["accuracy"] <= 1 and result["metrics"]["MAE"] >= 0


def test_adience_reference_split_file(script, tmp_path):
    root = _adience(tmp_path / "adience")
    faces = sorted(p.name[: -len(".jpg")] for p in (root / "aligned").glob("*/*.jpg"))
    split = tmp_path / "Adience-split.json"
    split.write_text(json.dumps({"train_id": faces[:15], "test_id": faces[15:]}))
    result = _run(script, tmp_path, "adience", root, "--split-file", str(split))
    assert len(result["runs"]) == 1 and result["runs"][0]["n_test"] == 5


def test_hci_random_draws(script, tmp_path):
    root = _hci(tmp_path / "hci")
    draws = ["--repeats", "2", "--train-per-decade", "2", "--test-per-decade", "1"]
    result = _run(script, tmp_path, "hci", root, *draws)
    assert [(r["n_train"], r["n_test"]) for r in result["runs"]] == [(10, 5), (10, 5)]
    assert "2 random draws" in result["protocol"]


def test_hci_needs_enough_photos_per_decade(script, tmp_path):
    root = _hci(tmp_path / "hci")
    with pytest.raises(SystemExit, match="1930s has 3 photos, fewer than"):
        script.main(["--dataset", "hci", "--root", str(root), *TINY])  # 210 + 55 by default


def test_coco_counts_per_category(script, tmp_path, capsys):
    root = _coco(tmp_path / "coco")
    result = _run(script, tmp_path, "coco-count", root)
    assert set(result["per_category"]) == {"horse", "apple"}
    assert result["runs"][0]["n_categories"] == 2
    means = [np.mean([m[k] for m in result["per_category"].values()]) for k in ("PLCC", "SRCC")]
    np.testing.assert_allclose([result["metrics"]["PLCC"], result["metrics"]["SRCC"]], means)
    from skrank import CLIPRanker

    if "negative_fraction" in CLIPRanker().get_params():
        assert result["negative_fraction"] == 0.2
        assert result["ranker_params"]["negative_fraction"] == 0.2
    else:
        assert result["negative_fraction"] is None
        assert "negative_fraction is not available" in capsys.readouterr().out


def test_the_paper_numbers_cite_their_source(script):
    assert "figures/results.png" in script.PAPER_SOURCE
    for dataset, (_, names) in script.PROTOCOLS.items():
        rows = script.PAPER[dataset]["rows"]
        assert set(rows[script.OURS]) == set(names)
        assert all(set(values) == set(names) for values in rows.values())
    assert script.PAPER["koniq10k"]["rows"][script.OURS] == {"PLCC": 0.919, "SRCC": 0.911}
    assert script.PAPER["hci"]["rows"][script.OURS]["accuracy"] == (0.728, 0.026)


def test_default_backbone_is_the_reference_configuration(script):
    assert script.resolve_backbone(None, None) == (
        "convnext_large_d_320",
        "laion2b_s29b_b131k_ft_soup",
    )
    assert script.resolve_backbone("ViT-B-16", None) == ("ViT-B-16", "openai")
    assert script.resolve_backbone("skrank-tiny", None) == ("skrank-tiny", None)
    assert script.resolve_backbone("ViT-B-32", "none") == ("ViT-B-32", None)


# ---------------------------------------------------------------------------------------
# --settings paper is the paper's model; every run prints the unknowns
# ---------------------------------------------------------------------------------------

# The README's paper model ("Defaults that differ from the paper"), stated here.
PAPER_MODEL = dict(
    n_fusion_layers=2,
    n_post_layers=2,
    score_pooling="mean",
    image_positions="none",
    lr=5e-5,
    reg_weight=0.2,
    max_epochs=30,
)
README_PAPER_MODEL = (
    'n_fusion_layers=2, n_post_layers=2, score_pooling="mean", image_positions="none", '
    "lr=5e-5, reg_weight=0.2, max_epochs=30)"
)
# What the script sets besides the model: the run's plumbing, and the preset it names.
RUN_PARAMS = {"instruction", "backbone", "pretrained", "device", "cache", "cache_dir",
              "num_workers", "random_state", "verbose", "preset"}  # fmt: skip


def _args(script, *argv):
    args = script.parser().parse_args(["--dataset", "koniq10k", "--root", ".", *argv])
    args.backbone, args.pretrained = script.resolve_backbone(args.backbone, args.pretrained)
    return args


def test_settings_paper_is_the_readme_paper_model(script):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert README_PAPER_MODEL in " ".join(readme.split())
    built = script.ranker(_args(script), INSTRUCTION, 0).get_params()
    readme_model = CLIPRanker(INSTRUCTION, **PAPER_MODEL).get_params()
    assert {k: built[k] for k in PAPER_MODEL} == PAPER_MODEL
    assert {k for k in built if built[k] != readme_model[k]} <= RUN_PARAMS
    assert built["preset"] == "paper" and built["weight_decay"] == 0.01  # the README's --wd
    # From the preset, not a copy: the two agree on every value the preset fills.
    paper = presets.PRESETS["paper"]
    assert {k: getattr(paper, k) for k in presets.FILLED} == {k: built[k] for k in presets.FILLED}
    assert paper.lr == built["lr"]


@pytest.mark.parametrize("weights", ["file:0123@ViT-B-32:abcd", "random:seed0@skrank-tiny:abcd"])
def test_settings_paper_resolves_to_the_papers_model(script, weights):
    built = script.ranker(_args(script), INSTRUCTION, 0).get_params()
    out = presets.resolve(validate_params(built), weights, np.zeros(12, int), None)
    assert out["preset_"].name == "paper"
    assert {k: out[k] for k in PAPER_MODEL} == PAPER_MODEL
    assert out["early_stopping"] is False  # no groups: the paper's fixed epochs


def test_settings_defaults_are_the_librarys(script):
    assert script.settings("defaults") == {}
    built = script.ranker(_args(script, "--settings", "defaults"), INSTRUCTION, 0).get_params()
    library = CLIPRanker(INSTRUCTION).get_params()
    assert {k for k in built if built[k] != library[k]} <= RUN_PARAMS - {"preset"}


def test_settings_paper_trains_the_papers_model_and_prints_the_unknowns(
    script, tmp_path, tiny_checkpoint, capsys
):
    """No --max-epochs: the paper's 30 epochs, on pretrained towers (a checkpoint file)."""
    root = _koniq(tmp_path / "koniq10k")
    out = tmp_path / "paper.json"
    argv = ["--dataset", "koniq10k", "--root", str(root), "--backbone", "skrank-tiny",
            "--pretrained", str(tiny_checkpoint), "--batch-size", "8", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    result = script.main(argv)
    written = json.loads(out.read_text())
    assert {k: written["ranker_params"][k] for k in PAPER_MODEL} == PAPER_MODEL
    assert written["resolved"] == {
        "preset_": "paper", "n_fusion_layers": 2, "n_post_layers": 2, "score_pooling": "mean",
        "lr_": 5e-5, "n_iter_": 30,
    }  # fmt: skip
    printed = capsys.readouterr().out
    assert (
        written["unknowns"]
        == result["unknowns"]
        == script.unknowns(script.parser().parse_args(argv))
    )
    assert len(written["unknowns"]) == 5
    for note in written["unknowns"]:
        assert f"- {note}" in printed  # before the run
        assert f"unknown: {note}" in printed  # and in the report
    assert "This run: lr=5e-05" in printed and "This run: max_epochs=30" in printed


def test_the_unknowns_name_each_fact_of_the_reference(script):
    notes = script.unknowns(_args(script))
    lr, warmup, epochs, drop_path, models = notes
    assert "--batch-size 5e-5" in lr and "0.0005" in lr and "lr=5e-05" in lr
    assert "10,000" in warmup and "warmup_fraction" in warmup and "0.05" in warmup
    assert "30 epochs" in epochs and "32" in epochs and "max_epochs=30" in epochs
    assert "0.1" in drop_path and "eval mode" in drop_path and "cache" in drop_path
    assert "multi-task" in models and "one model per dataset" in models
    defaults = script.unknowns(_args(script, "--settings", "defaults"))
    assert "lr='auto'" in defaults[0] and "max_epochs=None" in defaults[2]
    assert "max_epochs=3" in script.unknowns(_args(script, "--max-epochs", "3"))[2]


# ---------------------------------------------------------------------------------------
# Adience's near-frontal subset; COCO-ReM's annotations
# ---------------------------------------------------------------------------------------


def test_adience_frontal_five_folds(script, tmp_path):
    root = _adience(tmp_path / "adience")
    result = _run(script, tmp_path, "adience", root, "--adience-frontal")
    assert [r["n_test"] for r in result["runs"]] == [3] * 5  # the turned-away faces left out
    assert "near-frontal" in result["protocol"]


def test_adience_frontal_reference_split_file(script, tmp_path):
    root = _adience(tmp_path / "adience")
    faces = sorted(p.name[: -len(".jpg")] for p in (root / "aligned").glob("*/*.jpg"))
    split = tmp_path / "Adience-split.json"
    split.write_text(json.dumps({"train_id": faces[:15], "test_id": faces[15:]}))
    with pytest.warns(UserWarning, match="match no"):  # the split lists turned-away faces
        result = _run(
            script, tmp_path, "adience", root, "--adience-frontal", "--split-file", str(split)
        )
    runs = result["runs"]
    assert len(runs) == 1 and (runs[0]["n_train"], runs[0]["n_test"]) == (12, 3)  # of 15, 5
    assert "near-frontal" in result["protocol"] and "reference split" in result["protocol"]
    assert any("against the reference split's 8,698 / 4,320" in n for n in result["notes"])


def test_coco_rem_annotations(script, tmp_path):
    coco, rem = _coco_rem(tmp_path / "datasets")
    result = _run(script, tmp_path, "coco-count", coco, "--coco-rem", str(rem))
    assert result["annotations"] == {
        "train2017": str(rem / "instances_trainrem.json"),
        "val2017": str(rem / "instances_valrem.json"),
    }
    assert "COCO-ReM annotations" in result["protocol"]
    assert result["per_category"]["apple"]["n_test"] == 4  # 16231's apples: ReM's only
    plain = _run(script, tmp_path, "coco-count", coco)
    assert plain["per_category"]["apple"]["n_test"] == 3
    assert "COCO 2017 annotations" in plain["protocol"]
    assert plain["annotations"]["val2017"] == str(coco / "annotations" / "instances_val2017.json")


def test_coco_rem_annotations_must_be_there(script, tmp_path):
    coco, rem = _coco_rem(tmp_path / "datasets")
    (rem / "instances_trainrem.json").rename(rem / "instances_trainrem.json.zip")
    argv = ["--dataset", "coco-count", "--root", str(coco), *TINY, "--coco-rem", str(rem)]
    with pytest.raises(SystemExit, match=r"instances_trainrem.json.zip is there: unzip it"):
        script.main(argv)


@pytest.mark.parametrize(
    ("dataset", "option"), [("koniq10k", ["--adience-frontal"]), ("adience", ["--coco-rem", "."])]
)
def test_dataset_options_belong_to_their_dataset(script, tmp_path, dataset, option):
    with pytest.raises(SystemExit, match=f"{option[0]} is an option of --dataset"):
        script.main(["--dataset", dataset, "--root", str(tmp_path), *option])
