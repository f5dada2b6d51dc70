"""NABirds, Stanford Dogs, VehicleID, CUHK03-NP and the camera-less user layouts, each on a
miniature written in its official layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from dcal.cli import main
from dcal.data.catalog import load_dataset
from dcal.data.image_dataset import load_record_image
from dcal.data.image_files import IMAGE_SUFFIXES
from dcal.data.layout import SplitSizeWarning
from dcal.data.records import NO_CAMERA
from dcal.data.splits import summarize
from dcal.errors import DatasetError

from tiny_datasets import touch, write

pytestmark = pytest.mark.filterwarnings("ignore::dcal.data.layout.SplitSizeWarning")


# ----------------------------------------------------------------------------- NABirds


NABIRDS_IMAGES = [  # (image id, class id, train, box)
    ("0000139e-21dc-4d0c-bfe1-4cae3c85c5d0", 817, 1, (83, 59, 128, 228)),
    ("0000d9fc-4e02-4c06-a0af-a55cfb16b12b", 295, 0, (328, 88, 163, 298)),
    ("00019306-9d83-4334-b255-a447742edce3", 313, 1, (174, 367, 219, 378)),
    ("0001afd4-99a1-4a67-b940-d419413e23b3", 295, 1, (307, 179, 492, 224)),
]


def write_nabirds(root):
    for image_id, class_id, _, _ in NABIRDS_IMAGES:
        touch(root / "images" / f"{class_id:04d}" / f"{image_id.replace('-', '')}.jpg")
    write(root / "images.txt", [f"{i} {c:04d}/{i.replace('-', '')}.jpg" for i, c, _, _ in NABIRDS_IMAGES])
    write(root / "image_class_labels.txt", [f"{i} {c}" for i, c, _, _ in NABIRDS_IMAGES])
    write(root / "train_test_split.txt", [f"{i} {t}" for i, _, t, _ in NABIRDS_IMAGES])
    write(root / "bounding_boxes.txt", [f"{i} {' '.join(map(str, b))}" for i, _, _, b in NABIRDS_IMAGES])
    # Internal taxonomy nodes (0, 1, 22) and an unused leaf (999) label no image.
    write(root / "classes.txt", ["0 Birds", "1 Perching Birds", "22 Tits and Chickadees", "295 Oak Titmouse",
                                 "313 Red-tailed Hawk (Adult)", "817 Song Sparrow", "999 Unused Leaf"])
    write(root / "hierarchy.txt", ["1 0", "22 1", "295 22", "313 0", "817 1", "999 1"])


def test_nabirds_sparse_classes_boxes_and_size_warning(tmp_path):
    write_nabirds(tmp_path / "nabirds")
    with pytest.warns(SplitSizeWarning, match=r"train images: expected 23929 \(official\), found 3"):
        data = load_dataset("nabirds", tmp_path)  # the folder the archive unpacks into also works
    assert data.task == "fgvc" and data.num_classes == 3
    assert data.class_names == ["Oak Titmouse", "Red-tailed Hawk (Adult)", "Song Sparrow"]  # ids 295, 313, 817
    train, test = data.splits["train"], data.splits["test"]
    assert [(r.label, r.bbox) for r in train] == [(2, (83.0, 59.0, 128.0, 228.0)), (1, (174.0, 367.0, 219.0, 378.0)),
                                                   (0, (307.0, 179.0, 492.0, 224.0))]
    assert train[0].path.endswith("images/0817/0000139e21dc4d0cbfe14cae3c85c5d0.jpg")
    assert [r.label for r in test] == [0]
    assert summarize(data.splits) == {"train": {"images": 3, "classes": 3}, "test": {"images": 1, "classes": 1}}
    assert any("test classes: expected 555 (official), found 1" in m for m in data.mismatches)


def test_nabirds_missing_and_inconsistent_files(tmp_path):
    write_nabirds(tmp_path)
    (tmp_path / "bounding_boxes.txt").unlink()
    with pytest.raises(DatasetError, match=r"bounding_boxes\.txt not found; expected layout.*images\.txt"):
        load_dataset("nabirds", tmp_path)
    write_nabirds(tmp_path)
    write(tmp_path / "classes.txt", ["295 Oak Titmouse", "313 Red-tailed Hawk (Adult)"])
    with pytest.raises(DatasetError, match=r"class id 817 of image_class_labels\.txt is not in .*classes\.txt"):
        load_dataset("nabirds", tmp_path)
    write_nabirds(tmp_path)
    (tmp_path / "images" / "0295").rename(tmp_path / "images" / "elsewhere")
    with pytest.raises(DatasetError, match=r"2 image\(s\) listed in .*images\.txt are missing"):
        load_dataset("nabirds", tmp_path)


# ----------------------------------------------------------------------------- Stanford Dogs


def annotation_xml(boxes) -> str:
    objects = "".join(
        f"<object><name>dog</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for x1, y1, x2, y2 in boxes)
    return (f"<annotation><folder>02085620</folder><filename>x</filename><source><database>ImageNet database"
            f"</database></source><size><width>500</width><height>333</height><depth>3</depth></size>"
            f"<segment>0</segment>{objects}</annotation>")


DOGS = {  # split: [(folder, file stem, 1-based label, boxes)]
    "train": [("n02085620-Chihuahua", "n02085620_5927", 1, [(30, 14, 342, 300)]),
              ("n02085782-Japanese_spaniel", "n02085782_2", 2, [(10, 20, 110, 220), (150, 5, 400, 120)])],
    "test": [("n02085620-Chihuahua", "n02085620_10074", 1, [(1, 1, 250, 300)])],
}


def write_dogs(root):
    for split, entries in DOGS.items():
        for folder, stem, _, boxes in entries:
            touch(root / "Images" / folder / f"{stem}.jpg")
            write(root / "Annotation" / folder / stem, [annotation_xml(boxes)])
        scipy.io.savemat(str(root / f"{split}_list.mat"), {
            "file_list": np.array([f"{f}/{s}.jpg" for f, s, _, _ in entries], dtype=object).reshape(-1, 1),
            "annotation_list": np.array([f"{f}/{s}" for f, s, _, _ in entries], dtype=object).reshape(-1, 1),
            "labels": np.array([[label] for _, _, label, _ in entries], dtype=np.float64),
        })


def test_stanford_dogs_lists_labels_breeds_and_enclosing_boxes(tmp_path):
    write_dogs(tmp_path)
    with pytest.warns(SplitSizeWarning, match=r"test images: expected 8580 \(official\), found 1"):
        data = load_dataset("stanford_dogs", tmp_path)
    assert data.class_names == ["Chihuahua", "Japanese spaniel"] and data.num_classes == 2
    train, test = data.splits["train"], data.splits["test"]
    assert [r.label for r in train] == [0, 1] and [r.label for r in test] == [0]
    assert train[0].path.endswith("Images/n02085620-Chihuahua/n02085620_5927.jpg")
    # 1-based inclusive VOC corners -> 0-based (x, y, w, h); two dogs -> the box enclosing both.
    assert train[0].bbox == (29.0, 13.0, 313.0, 287.0)
    assert train[1].bbox == (9.0, 4.0, 391.0, 216.0)
    assert test[0].bbox == (0.0, 0.0, 250.0, 300.0)


def test_stanford_dogs_missing_files_and_fields(tmp_path):
    write_dogs(tmp_path)
    (tmp_path / "Annotation" / "n02085620-Chihuahua" / "n02085620_10074").unlink()
    with pytest.raises(DatasetError, match=r"annotation .*n02085620_10074 not found; expected layout.*Annotation/"):
        load_dataset("stanford_dogs", tmp_path)
    write(tmp_path / "Annotation" / "n02085620-Chihuahua" / "n02085620_10074", ["<annotation><object></object>"])
    with pytest.raises(DatasetError, match=r"cannot read a box from .*n02085620_10074"):
        load_dataset("stanford_dogs", tmp_path)
    import shutil

    shutil.rmtree(tmp_path / "Annotation")  # images and lists only: no boxes
    assert all(r.bbox is None for r in load_dataset("stanford_dogs", tmp_path).splits["train"])
    scipy.io.savemat(str(tmp_path / "test_list.mat"), {"file_list": np.array(["a.jpg"], dtype=object)})
    with pytest.raises(DatasetError, match=r"test_list\.mat has no annotation_list, labels"):
        load_dataset("stanford_dogs", tmp_path)
    (tmp_path / "test_list.mat").unlink()
    with pytest.raises(DatasetError, match=r"test_list\.mat not found; expected layout"):
        load_dataset("stanford_dogs", tmp_path)


# ----------------------------------------------------------------------------- VehicleID


def write_vehicleid(root):
    names = iter(f"{n:07d}" for n in range(1, 100))
    train = [(next(names), pid) for pid in (5, 5, 9, 9, 9, 12)]
    test = [(next(names), pid) for pid in (20, 20, 20, 31, 31, 47, 47, 47, 47)]
    for name, _ in train + test:
        touch(root / "image" / f"{name}.jpg")
    write(root / "train_test_split" / "train_list.txt", [f"{n} {p}" for n, p in train])
    write(root / "train_test_split" / "test_list_800.txt", [f"{n} {p}" for n, p in test])
    return train, test


def test_vehicleid_lists_no_cameras_and_first_draw(tmp_path):
    _, test = write_vehicleid(tmp_path / "VehicleID_V1.0")
    with pytest.warns(SplitSizeWarning, match=r"train images: expected 113346 \(official\), found 6"):
        data = load_dataset("vehicleid", tmp_path)
    assert data.reid_protocol == "gallery_draws" and data.eval_splits == ("test",)
    assert [(r.pid, r.original_pid) for r in data.splits["train"]] == [(0, 5), (0, 5), (1, 9), (1, 9), (1, 9), (2, 12)]
    assert data.num_classes == 3
    assert all(r.camid == NO_CAMERA for split in data.splits.values() for r in split)
    assert [r.original_pid for r in data.splits["test"]] == [p for _, p in test]
    assert data.splits["test"][0].path.endswith("image/0000007.jpg")
    query, gallery = data.splits["query"], data.splits["gallery"]
    assert sorted(r.pid for r in gallery) == [20, 31, 47]  # one image per vehicle
    assert sorted(r.path for r in query + gallery) == sorted(r.path for r in data.splits["test"])
    assert summarize(data.splits)["test"] == {"images": 9, "ids": 3}  # no camera count
    assert any("test ids: expected 800 (official), found 3" in m for m in data.mismatches)


def test_vehicleid_test_sizes_and_errors(tmp_path):
    write_vehicleid(tmp_path)
    with pytest.raises(DatasetError, match=r"test_list_1600\.txt not found; expected layout.*train_test_split/"):
        load_dataset("vehicleid", tmp_path, test_size=1600)
    with pytest.raises(DatasetError, match="test_size 500 is not one of 800, 1600, 2400"):
        load_dataset("vehicleid", tmp_path, test_size=500)
    write(tmp_path / "train_test_split" / "test_list_800.txt", ["0000007 twenty"])
    with pytest.raises(DatasetError, match=r"line 1 of .*test_list_800\.txt \('0000007 twenty'\) is not '<name> <vehicle id>'"):
        load_dataset("vehicleid", tmp_path)
    write(tmp_path / "train_test_split" / "test_list_800.txt", ["0000099 20"])
    with pytest.raises(DatasetError, match=r"1 image\(s\) listed in .*test_list_800\.txt are missing: .*0000099\.jpg"):
        load_dataset("vehicleid", tmp_path)


# ----------------------------------------------------------------------------- CUHK03-NP


def write_cuhk03(root):
    layout = {"detected": {"bounding_box_train": ["0001_c1_1", "0001_c2_6", "0003_c1_2"],
                           "query": ["0002_c1_1", "0004_c2_7"],
                           "bounding_box_test": ["0002_c2_6", "0004_c1_1", "0004_c1_2"]},
              "labeled": {"bounding_box_train": ["0001_c1_1", "0003_c1_2"], "query": ["0002_c1_1"],
                          "bounding_box_test": ["0002_c2_6"]}}
    for variant, folders in layout.items():
        for folder, stems in folders.items():
            for stem in stems:
                touch(root / variant / folder / f"{stem}.png")
        (root / variant / "bounding_box_test" / "readme.txt").write_text("not an image")


def test_cuhk03_detected_and_labeled(tmp_path):
    write_cuhk03(tmp_path / "cuhk03-np")
    with pytest.warns(SplitSizeWarning, match=r"query images: expected 1400 \(official\), found 2"):
        data = load_dataset("cuhk03", tmp_path)
    assert summarize(data.splits) == {"train": {"images": 3, "ids": 2, "cameras": 2},
                                      "query": {"images": 2, "ids": 2, "cameras": 2},
                                      "gallery": {"images": 3, "ids": 2, "cameras": 2}}
    assert [(r.pid, r.original_pid, r.camid) for r in data.splits["train"]] == [(0, 1, 0), (0, 1, 1), (1, 3, 0)]
    assert all("/detected/" in r.path and r.path.endswith(".png") for r in data.splits["gallery"])
    assert any("gallery images: expected 5332" in m for m in data.mismatches)
    labeled = load_dataset("cuhk03", tmp_path, variant="labeled")
    assert len(labeled.splits["train"]) == 2 and all("/labeled/" in r.path for r in labeled.splits["train"])
    assert any("gallery images: expected 5328" in m for m in labeled.mismatches)
    with pytest.raises(DatasetError, match="variant 'both' is not one of detected, labeled"):
        load_dataset("cuhk03", tmp_path, variant="both")
    import shutil

    shutil.rmtree(tmp_path / "cuhk03-np" / "labeled" / "query")
    with pytest.raises(DatasetError, match=r"labeled/query not found; expected layout.*bounding_box_test/"):
        load_dataset("cuhk03", tmp_path, variant="labeled")


# ----------------------------------------------------------------------------- camera-less user layouts


def test_reid_list_without_camera_column(tmp_path):
    for name in ("a.jpg", "b c.jpg", "d.jpg", "e.jpg"):
        touch(tmp_path / "imgs" / name)
    write(tmp_path / "train.txt", ["imgs/a.jpg 10", "imgs/b c.jpg 42", "imgs/d.jpg -1"])
    write(tmp_path / "query.txt", ["imgs/d.jpg 7", "imgs/e.jpg 7"])
    write(tmp_path / "gallery.txt", ["imgs/d.jpg 7", "imgs/e.jpg 7"])  # the same images as the queries
    data = load_dataset("reid_list", tmp_path)
    assert [(r.pid, r.original_pid, r.camid) for r in data.splits["train"]] == [(0, 10, NO_CAMERA), (1, 42, NO_CAMERA)]
    assert data.splits["train"][1].path.endswith("imgs/b c.jpg")
    assert summarize(data.splits)["query"] == {"images": 2, "ids": 1}
    write(tmp_path / "gallery.txt", ["imgs/d.jpg 7", "imgs/e.jpg 7 1"])
    with pytest.raises(DatasetError, match=r"line 2 of .*gallery\.txt \('imgs/e\.jpg 7 1'\) is not '<path> <pid>'"):
        load_dataset("reid_list", tmp_path)


def write_reid_folder(root, test_only=False):
    for split, identities in (("train", {"alice": 3, "bob": 2}),
                              *((("test", {"carol": 2, "dave": 3}),) if test_only else
                                (("query", {"carol": 1, "dave": 1}), ("gallery", {"carol": 2, "erin": 1})))):
        for name, count in identities.items():
            for i in range(count):
                touch(root / split / name / f"{i}.jpg")
            (root / split / name / "notes.txt").write_text("not an image")


def test_reid_folder_identities_without_cameras(tmp_path):
    write_reid_folder(tmp_path)
    data = load_dataset("reid_folder", tmp_path)
    assert [r.pid for r in data.splits["train"]] == [0, 0, 0, 1, 1] and data.num_classes == 2 and data.mismatches == []
    # Test identities numbered over query and gallery together: carol 0, dave 1, erin 2.
    assert [r.pid for r in data.splits["query"]] == [0, 1]
    assert [r.pid for r in data.splits["gallery"]] == [0, 0, 2]
    assert all(r.camid == NO_CAMERA for split in data.splits.values() for r in split)
    only_test = tmp_path / "only_test"
    write_reid_folder(only_test, test_only=True)
    data = load_dataset("reid_folder", only_test)
    assert [r.path for r in data.splits["query"]] == [r.path for r in data.splits["gallery"]]
    assert len(data.splits["query"]) == 5
    import shutil

    shutil.rmtree(only_test / "test")
    with pytest.raises(DatasetError, match=r"only_test/query not found; expected layout.*test/<identity>"):
        load_dataset("reid_folder", only_test)


def test_image_suffixes_are_pillow_formats_and_both_folder_layouts_read_them(tmp_path):
    opened = Image.registered_extensions()
    assert all(opened.get(suffix) in Image.OPEN for suffix in IMAGE_SUFFIXES)  # Pillow reads each
    for root, dataset in ((tmp_path / "fgvc", "image_folder"), (tmp_path / "reid", "reid_folder")):
        for split in ("train", "test"):
            for i, suffix in enumerate(IMAGE_SUFFIXES):  # every suffix, in upper case every other time
                touch(root / split / "a" / f"{i:02d}{suffix.upper() if i % 2 else suffix}", size=(6, 4))
            (root / split / "a" / "notes.txt").write_text("not an image")
            touch(root / split / "a" / "scan.pdf")  # Pillow writes PDF but cannot open it
        records = load_dataset(dataset, root).splits["train"]
        assert [Path(r.path).suffix.lower() for r in records] == list(IMAGE_SUFFIXES)
        assert all(load_record_image(r).size == (6, 4) for r in records)


# ----------------------------------------------------------------------------- dcal data


def test_data_command_counts_for_the_new_datasets(tmp_path, capsys):
    write_vehicleid(tmp_path / "vid")
    assert main(["data", "--dataset", "vehicleid", "--root", str(tmp_path / "vid")]) == 0
    out = capsys.readouterr().out
    assert "test ids: expected 800 (official), found 3" in out
    assert "10 galleries of one image per identity drawn from test" in out and "no camera ids" in out
    assert main(["data", "--dataset", "vehicleid", "--root", str(tmp_path / "vid"), "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["train"] == {"images": 6, "ids": 3} and counts["test"] == {"images": 9, "ids": 3}
    assert counts["gallery"] == {"images": 3, "ids": 3} and counts["query"] == {"images": 6, "ids": 3}
    write_cuhk03(tmp_path / "cuhk")
    assert main(["data", "--dataset", "cuhk03", "--root", str(tmp_path / "cuhk"), "--option", "variant=labeled"]) == 0
    out = capsys.readouterr().out
    assert "train images: expected 7368 (official), found 2" in out and "no camera ids" not in out
    write_nabirds(tmp_path / "nab")
    assert main(["data", "--dataset", "nabirds", "--root", str(tmp_path / "nab"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["train"] == {"images": 3, "classes": 3}
    write_dogs(tmp_path / "dogs")
    assert main(["data", "--dataset", "stanford_dogs", "--root", str(tmp_path / "dogs")]) == 0
    assert "train images: expected 12000 (official), found 2" in capsys.readouterr().out
