"""Every parser on a miniature written in its dataset's official layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from dcal.cli import main
from dcal.data.catalog import DATASETS, load_dataset
from dcal.data.image_dataset import load_record_image
from dcal.data.layout import SplitSizeWarning
from dcal.errors import DatasetError

from tiny_datasets import touch, write

pytestmark = pytest.mark.filterwarnings("ignore::dcal.data.layout.SplitSizeWarning")


def struct_array(rows: list[dict]) -> np.ndarray:
    """A MATLAB struct array (what scipy.io.loadmat returns for the Cars annotation files)."""
    fields = list(rows[0])
    array = np.zeros((1, len(rows)), dtype=[(name, object) for name in fields])
    for i, row in enumerate(rows):
        for name in fields:
            array[0, i][name] = np.array(row[name])
    return array


# ----------------------------------------------------------------------------- CUB-200-2011


def write_cub(root):
    classes = ["001.Black_footed_Albatross", "002.Laysan_Albatross"]
    images = [(1, classes[0], "Black_Footed_Albatross_0001_796111.jpg", 1, (60.0, 27.0, 325.0, 304.0)),
              (2, classes[0], "Black_Footed_Albatross_0002_55.jpg", 0, (139.0, 30.0, 153.0, 264.0)),
              (3, classes[1], "Laysan_Albatross_0001_545.jpg", 1, (14.0, 112.0, 388.0, 186.0))]
    for _, folder, name, _, _ in images:
        touch(root / "images" / folder / name)
    write(root / "images.txt", [f"{i} {folder}/{name}" for i, folder, name, _, _ in images])
    write(root / "image_class_labels.txt", [f"{i} {1 if folder == classes[0] else 2}" for i, folder, _, _, _ in images])
    write(root / "train_test_split.txt", [f"{i} {train}" for i, _, _, train, _ in images])
    write(root / "bounding_boxes.txt", [f"{i} {' '.join(map(str, box))}" for i, _, _, _, box in images])
    write(root / "classes.txt", [f"{c + 1} {name}" for c, name in enumerate(classes)])


def test_cub200_records_boxes_classes_and_size_warning(tmp_path):
    write_cub(tmp_path / "CUB_200_2011")
    with pytest.warns(SplitSizeWarning, match=r"train images: expected 5994 \(official\), found 2"):
        data = load_dataset("cub200", tmp_path)  # the folder the archive unpacks into also works
    assert data.task == "fgvc" and data.train_split == "train"
    assert data.class_names == ["Black footed Albatross", "Laysan Albatross"] and data.num_classes == 2
    train, test = data.splits["train"], data.splits["test"]
    assert [(r.label, r.bbox) for r in train] == [(0, (60.0, 27.0, 325.0, 304.0)), (1, (14.0, 112.0, 388.0, 186.0))]
    assert train[0].path.endswith("images/001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg")
    assert [r.label for r in test] == [0]
    assert any("test images: expected 5794" in m for m in data.mismatches)


def test_cub200_missing_file_names_path_layout_and_demo(tmp_path):
    write_cub(tmp_path)
    (tmp_path / "train_test_split.txt").unlink()
    with pytest.raises(DatasetError, match=r"train_test_split\.txt not found; expected layout.*dcal demo-data"):
        load_dataset("cub200", tmp_path)


def test_cub200_listed_image_missing(tmp_path):
    write_cub(tmp_path)
    (tmp_path / "images/002.Laysan_Albatross/Laysan_Albatross_0001_545.jpg").unlink()
    with pytest.raises(DatasetError, match="Laysan_Albatross_0001_545.jpg"):
        load_dataset("cub200", tmp_path)


@pytest.mark.parametrize("name,lines,message", [
    ("train_test_split.txt", ["1 1", "2 yes", "3 1"],
     r"image id 2 has 'yes' in train_test_split\.txt; expected 1 \(train\) or 0 \(test\), at line 2 of .*train_test_split\.txt"),
    ("bounding_boxes.txt", ["1 60 27 325 304", "2 139 30", "3 14 112 388 186"],
     r"line 2 of .*bounding_boxes\.txt \('2 139 30'\) is not '<image id> <x> <y> <w> <h>'"),
    ("image_class_labels.txt", ["1 1", "2", "3 2"], r"line 2 of .*image_class_labels\.txt \('2'\) is not '<image id> <class id>'"),
    ("classes.txt", ["1 001.Black_footed_Albatross", "two 002.Laysan_Albatross"],
     r"line 2 of .*classes\.txt \('two 002\.Laysan_Albatross'\) is not '<class id> <folder name>'"),
])
def test_cub200_malformed_lines_name_file_line_and_form(tmp_path, name, lines, message):
    write_cub(tmp_path)
    write(tmp_path / name, lines)
    with pytest.raises(DatasetError, match=f"^cub200: {message}$"):
        load_dataset("cub200", tmp_path)


# ----------------------------------------------------------------------------- Stanford Cars


def test_stanford_cars_devkit_layout(tmp_path):
    for folder, names in (("cars_train", ["00001.jpg", "00002.jpg"]), ("cars_test", ["00001.jpg"])):
        for name in names:
            touch(tmp_path / folder / name)
    box = {"bbox_x1": 39, "bbox_y1": 116, "bbox_x2": 569, "bbox_y2": 375}
    (tmp_path / "devkit").mkdir()
    scipy.io.savemat(tmp_path / "devkit/cars_train_annos.mat", {
        "annotations": struct_array([{**box, "class": 14, "fname": "00001.jpg"},
                                     {**box, "class": 3, "fname": "00002.jpg"}])})
    scipy.io.savemat(tmp_path / "devkit/cars_meta.mat", {
        "class_names": np.array([[f"Car model {i}" for i in range(1, 197)]], dtype=object)})
    scipy.io.savemat(tmp_path / "cars_test_annos_withlabels.mat", {
        "annotations": struct_array([{**box, "class": 196, "fname": "00001.jpg"}])})
    with pytest.warns(SplitSizeWarning, match="train images: expected 8144"):
        data = load_dataset("stanford_cars", tmp_path)
    assert data.num_classes == 196 and data.class_names[13] == "Car model 14"
    train, test = data.splits["train"], data.splits["test"]
    assert [r.label for r in train] == [13, 2] and [r.label for r in test] == [195]
    assert train[0].bbox == (38.0, 115.0, 531.0, 260.0)  # 1-based inclusive → 0-based x, y, w, h
    assert test[0].path.endswith("cars_test/00001.jpg")


def test_stanford_cars_car_ims_layout(tmp_path):
    for name in ("000001.jpg", "000002.jpg", "000003.jpg"):
        touch(tmp_path / "car_ims" / name)
    rows = [{"relative_im_path": f"car_ims/00000{i}.jpg", "bbox_x1": 1, "bbox_y1": 2, "bbox_x2": 10, "bbox_y2": 20,
             "class": c, "test": t} for i, c, t in ((1, 1, 0), (2, 2, 1), (3, 2, 0))]
    scipy.io.savemat(tmp_path / "cars_annos.mat", {
        "annotations": struct_array(rows), "class_names": np.array([["AM General Hummer SUV 2000", "Acura RL Sedan 2012"]], dtype=object)})
    with pytest.warns(SplitSizeWarning):
        data = load_dataset("stanford_cars", tmp_path)
    assert data.class_names == ["AM General Hummer SUV 2000", "Acura RL Sedan 2012"]
    assert [(r.path.rsplit("/", 1)[1], r.label) for r in data.splits["train"]] == [("000001.jpg", 0), ("000003.jpg", 1)]
    assert [r.label for r in data.splits["test"]] == [1]
    assert data.splits["test"][0].bbox == (0.0, 1.0, 10.0, 19.0)


def test_stanford_cars_wrong_mat_fields(tmp_path):
    touch(tmp_path / "car_ims/000001.jpg")
    scipy.io.savemat(tmp_path / "cars_annos.mat", {"annotations": struct_array([{"relative_im_path": "car_ims/000001.jpg"}]),
                                                   "class_names": np.array([["a"]], dtype=object)})
    with pytest.raises(DatasetError, match=r"cars_annos\.mat has no 'annotations' struct.*missing: bbox_x1"):
        load_dataset("stanford_cars", tmp_path)


# ----------------------------------------------------------------------------- FGVC-Aircraft


def write_aircraft(root):
    data = root / "fgvc-aircraft-2013b" / "data"
    rows = {"1025794": ("707-320", "Boeing 707", "Boeing"), "1340192": ("737-700", "Boeing 737", "Boeing"),
            "0056978": ("A320", "A320", "Airbus"), "0062781": ("737-700", "Boeing 737", "Boeing")}
    splits = {"train": ["1025794", "0056978"], "val": ["1340192"], "test": ["0062781"]}
    splits["trainval"] = splits["train"] + splits["val"]
    for image_id in rows:
        touch(data / "images" / f"{image_id}.jpg", size=(40, 50))
    for level, column in (("variant", 0), ("family", 1), ("manufacturer", 2)):
        for split, ids in splits.items():
            write(data / f"images_{level}_{split}.txt", [f"{i} {rows[i][column]}" for i in ids])
    write(data / "variants.txt", ["707-320", "737-700", "A320"])
    write(data / "families.txt", ["A320", "Boeing 707", "Boeing 737"])
    write(data / "manufacturers.txt", ["Airbus", "Boeing"])
    write(data / "images_box.txt", ["1025794 3 144 998 431"])


def test_aircraft_levels_splits_and_banner(tmp_path):
    write_aircraft(tmp_path)
    with pytest.warns(SplitSizeWarning, match=r"trainval images: expected 6667 \(official\), found 3"):
        data = load_dataset("aircraft", tmp_path)
    assert set(data.splits) == {"train", "val", "trainval", "test"} and data.train_split == "trainval"
    assert len(data.splits[data.train_split]) == 3 and data.class_names == ["707-320", "737-700", "A320"]
    assert [r.label for r in data.splits["trainval"]] == [0, 2, 1]
    assert data.splits["train"][0].bbox == (2.0, 143.0, 996.0, 288.0) and data.splits["train"][1].bbox is None
    assert all(r.crop_bottom == 20 for split in data.splits.values() for r in split)
    assert load_record_image(data.splits["test"][0]).size == (40, 30)  # 50 rows − 20-row banner
    with pytest.warns(SplitSizeWarning, match="classes: expected 70"):
        family = load_dataset("aircraft", tmp_path, level="family", train_split="train")
    assert family.class_names[family.splits["test"][0].label] == "Boeing 737" and len(family.splits[family.train_split]) == 2
    with pytest.warns(SplitSizeWarning, match="classes: expected 30"):
        maker = load_dataset("aircraft", tmp_path, level="manufacturer")
    assert [maker.class_names[r.label] for r in maker.splits["trainval"]] == ["Boeing", "Airbus", "Boeing"]
    with pytest.raises(DatasetError, match="level 'model' is not one of variant, family, manufacturer"):
        load_dataset("aircraft", tmp_path, level="model")


@pytest.mark.parametrize("name,lines,line,expected", [
    ("images_variant_test.txt", ["0062781 737-700", "", "1025794"], "line 3 of .*images_variant_test\\.txt \\('1025794'\\)",
     "<image id> <class name>"),
    ("images_box.txt", ["1025794 3 144 998 431", "0056978 3 144 998"], "line 2 of .*images_box\\.txt \\('0056978 3 144 998'\\)",
     "<image id> <xmin> <ymin> <xmax> <ymax>"),
    ("images_box.txt", ["1025794 3 144 nine 431"], "line 1 of .*images_box\\.txt \\('1025794 3 144 nine 431'\\)",
     "<image id> <xmin> <ymin> <xmax> <ymax>"),
])
def test_aircraft_malformed_lines_name_file_line_and_form(tmp_path, name, lines, line, expected):
    write_aircraft(tmp_path)
    write(tmp_path / "fgvc-aircraft-2013b" / "data" / name, lines)  # the line number counts the blank line
    with pytest.raises(DatasetError, match=f"^aircraft: {line} is not '{expected}'$"):
        load_dataset("aircraft", tmp_path)


# ----------------------------------------------------------------------------- Market-1501 / DukeMTMC-reID


def test_market1501_junk_distractors_relabel_cameras(tmp_path):
    root = tmp_path / "Market-1501-v15.09.15"
    for name in ("0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s3_077419_03.jpg"):
        touch(root / "bounding_box_train" / name)
    touch(root / "query" / "0007_c1s1_000551_00.jpg")
    for name in ("0007_c2s1_000551_01.jpg", "0000_c1s1_000551_05.jpg", "-1_c1s1_000401_03.jpg"):
        touch(root / "bounding_box_test" / name)
    with pytest.warns(SplitSizeWarning, match="gallery images: expected 15913"):
        data = load_dataset("market1501", tmp_path)
    train = data.splits["train"]
    assert data.task == "reid" and data.num_classes == 2
    assert [(r.pid, r.original_pid, r.camid) for r in train] == [(0, 2, 0), (0, 2, 1), (1, 7, 2)]
    assert [(r.pid, r.camid) for r in data.splits["query"]] == [(7, 0)]
    gallery = sorted((r.pid, r.camid) for r in data.splits["gallery"])
    assert gallery == [(0, 0), (7, 1)]  # junk (−1) dropped, distractor (0) kept


def test_dukemtmc_file_names(tmp_path):
    for folder, names in (("bounding_box_train", ["0001_c2_f0046182.jpg", "0005_c8_f0001234.jpg"]),
                          ("query", ["0005_c1_f0001111.jpg"]), ("bounding_box_test", ["0005_c3_f0002222.jpg"])):
        for name in names:
            touch(tmp_path / "DukeMTMC-reID" / folder / name)
    with pytest.warns(SplitSizeWarning, match="train images: expected 16522"):
        data = load_dataset("dukemtmc", tmp_path)
    assert [(r.pid, r.original_pid, r.camid) for r in data.splits["train"]] == [(0, 1, 1), (1, 5, 7)]
    assert [(r.pid, r.camid) for r in data.splits["gallery"]] == [(5, 2)]


def test_market_missing_folder(tmp_path):
    touch(tmp_path / "bounding_box_train/0002_c1s1_000451_03.jpg")
    touch(tmp_path / "query/0002_c1s1_000451_03.jpg")
    with pytest.raises(DatasetError, match=r"bounding_box_test not found; expected layout"):
        load_dataset("market1501", tmp_path)


# ----------------------------------------------------------------------------- MSMT17


@pytest.mark.parametrize("train_dir,test_dir", [("train", "test"), ("mask_train_v2", "mask_test_v2")])
def test_msmt17_v1_and_v2_lists_and_val_option(tmp_path, train_dir, test_dir):
    root = tmp_path / "MSMT17_V1"
    lists = {"list_train.txt": (train_dir, ["0000/0000_000_01_0303morning_0015_0.jpg 0", "0001/0001_002_07_0303noon_0101_1.jpg 1"]),
             "list_val.txt": (train_dir, ["0000/0000_004_15_0303afternoon_0300_2.jpg 0"]),
             "list_query.txt": (test_dir, ["0000/0000_000_01_0303morning_0008_0.jpg 0"]),
             "list_gallery.txt": (test_dir, ["0000/0000_011_03_0303afternoon_0014_0.jpg 0", "0002/0002_001_12_0113morning_0009_1.jpg 2"])}
    for list_name, (folder, lines) in lists.items():
        for line in lines:
            touch(root / folder / line.split()[0])
        write(root / list_name, lines)
    with pytest.warns(SplitSizeWarning, match=r"train images: expected 32621 \(official\), found 3"):
        data = load_dataset("msmt17", tmp_path)
    assert [(r.pid, r.camid) for r in data.splits[data.train_split]] == [(0, 0), (1, 6), (0, 14)]
    assert [(r.pid, r.camid) for r in data.splits["gallery"]] == [(0, 2), (2, 11)]
    assert data.splits["query"][0].path.endswith(f"{test_dir}/0000/0000_000_01_0303morning_0008_0.jpg")
    with pytest.warns(SplitSizeWarning, match=r"train images: expected 30248 \(official\), found 2"):
        without_val = load_dataset("msmt17", tmp_path, include_val=False)
    assert len(without_val.splits[without_val.train_split]) == 2


# ----------------------------------------------------------------------------- VeRi-776


def test_veri776_name_lists(tmp_path):
    files = {"train": ("image_train", ["0001_c001_00016450_0.jpg", "0001_c002_00016460_0.jpg", "0003_c020_00000001_1.jpg"]),
             "query": ("image_query", ["0002_c002_00030600_0.jpg"]), "test": ("image_test", ["0002_c003_00030620_0.jpg"])}
    for split, (folder, names) in files.items():
        for name in names:
            touch(tmp_path / "VeRi" / folder / name)
        write(tmp_path / "VeRi" / f"name_{split}.txt", names)
    with pytest.warns(SplitSizeWarning, match="train ids: expected 576"):
        data = load_dataset("veri776", tmp_path)
    assert [(r.pid, r.original_pid, r.camid) for r in data.splits[data.train_split]] == [(0, 1, 0), (0, 1, 1), (1, 3, 19)]
    assert [(r.pid, r.camid) for r in data.splits["gallery"]] == [(2, 2)]
    (tmp_path / "VeRi/image_test/0002_c003_00030620_0.jpg").unlink()
    with pytest.raises(DatasetError, match=r"listed in .*name_test\.txt are missing: .*0002_c003_00030620_0\.jpg"):
        load_dataset("veri776", tmp_path)


# ----------------------------------------------------------------------------- user layouts


def test_image_folder(tmp_path):
    for split, classes in (("train", ["sparrow", "finch"]), ("test", ["finch"])):
        for cls in classes:
            touch(tmp_path / split / cls / "a.jpg")
            touch(tmp_path / split / cls / "b.PNG")
            (tmp_path / split / cls / "notes.txt").write_text("not an image")
    data = load_dataset("image_folder", tmp_path)
    assert data.class_names == ["finch", "sparrow"] and data.mismatches == []
    assert [r.label for r in data.splits[data.train_split]] == [0, 0, 1, 1] and [r.label for r in data.splits["test"]] == [0, 0]
    touch(tmp_path / "test" / "crow" / "c.jpg")
    with pytest.raises(DatasetError, match="crow has no counterpart"):
        load_dataset("image_folder", tmp_path)


def test_reid_list(tmp_path):
    touch(tmp_path / "imgs/a.jpg"), touch(tmp_path / "imgs/b c.jpg"), touch(tmp_path / "imgs/d.jpg")
    write(tmp_path / "train.txt", ["imgs/a.jpg 10 0", "imgs/b c.jpg 42 3", "imgs/d.jpg -1 1"])
    write(tmp_path / "query.txt", ["imgs/a.jpg 10 0"])
    write(tmp_path / "gallery.txt", ["imgs/d.jpg 10 2"])
    data = load_dataset("reid_list", tmp_path)
    assert [(r.pid, r.original_pid, r.camid) for r in data.splits[data.train_split]] == [(0, 10, 0), (1, 42, 3)]
    write(tmp_path / "gallery.txt", ["imgs/d.jpg ten 2"])
    with pytest.raises(DatasetError, match=r"line 1 of .*gallery\.txt .* is not '<path> <pid> <camid>'"):
        load_dataset("reid_list", tmp_path)


# ----------------------------------------------------------------------------- catalogue


def test_unknown_names_and_options_list_the_valid_ones(tmp_path):
    with pytest.raises(DatasetError, match="valid names: " + ", ".join(DATASETS)):
        load_dataset("cub", tmp_path)
    with pytest.raises(DatasetError, match=r"unknown option\(s\) include_val; valid options: none"):
        load_dataset("market1501", tmp_path, include_val=True)
    with pytest.raises(DatasetError, match=r"valid options: include_val \(default True\)"):
        load_dataset("msmt17", tmp_path, level="x")


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nowhere'} is not a folder; expected layout"):
        load_dataset("veri776", tmp_path / "nowhere")


def test_data_command_reports_counts_and_mismatches(tmp_path, capsys):
    write_cub(tmp_path)
    assert main(["data", "--dataset", "cub200", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train images: expected 5994 (official), found 2" in out and "classes" in out
    assert main(["data", "--dataset", "cub200", "--root", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"train": {"images": 2, "classes": 2}, "test": {"images": 1, "classes": 1}}
    assert main(["data", "--dataset", "msmt17", "--root", str(tmp_path), "--option", "include_val=false"]) == 2
    assert "list_query.txt not found" in capsys.readouterr().err
