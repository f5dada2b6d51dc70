"""`dcal search`: rankings equal a brute-force ranking, the folder cache, the JSON contract, contact
sheets, and every bad input; the chunked top-k against the dense reference."""

import json
import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dcal.cli import main
from dcal.config import Config
from dcal.data.image_dataset import load_image
from dcal.engine.checkpoint import save_checkpoint
from dcal.engine.model_setup import build_model
from dcal.evaluation.nearest import nearest, nearest_dense, unit_rows
from dcal.export import gallery as gallery_module
from dcal.export.gallery import cache_path, file_sha256, open_gallery
from dcal.engine.trained_model import load_trained
from tiny_datasets import write_tiny_fgvc, write_tiny_reid

TINY_VIT = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}


def _checkpoint(path, task, dataset, root, num_classes, embed_dim=32):
    config = Config()
    config.task, config.name = task, f"tiny-{task}"
    config.model.timm_kwargs = {**TINY_VIT, "embed_dim": embed_dim}
    config.model.pwca_blocks = 2
    config.data.dataset, config.data.root, config.data.synthetic = dataset, str(root), False
    config.data.img_size, config.data.resize_size = [32, 32], None
    config.eval.batch_size = 8
    model = build_model(config, num_classes, pretrained=False)
    save_checkpoint({"model": model.state_dict(), "config": config.to_dict(), "task": task,
                     "num_classes": num_classes, "class_names": None}, path)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("search")
    market = write_tiny_reid(tmp / "market")
    fgvc_root = write_tiny_fgvc(tmp / "fgvc", classes=2, train_per_class=2, test_per_class=2)
    return {
        "tmp": tmp,
        "market": market,
        "reid": _checkpoint(tmp / "reid.pt", "reid", "market1501", market, 6),
        "reid_wide": _checkpoint(tmp / "reid-wide.pt", "reid", "market1501", market, 6, embed_dim=48),
        "reid_other": _checkpoint(tmp / "reid-other.pt", "reid", "market1501", market, 6),
        "fgvc": _checkpoint(tmp / "fgvc.pt", "fgvc", "image_folder", fgvc_root, 2),
        "fgvc_root": fgvc_root,
    }


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _gallery_copy(tiny, name):
    folder = tiny["tmp"] / name
    shutil.copytree(tiny["market"] / "bounding_box_test", folder, ignore=shutil.ignore_patterns(".dcal-features-*"))
    return folder


def _brute_force(checkpoint, query, gallery_files):
    """The model's features computed image by image, ranked by a full double-precision distance matrix."""
    trained = load_trained(checkpoint, device="cpu")
    with torch.no_grad():
        feats = [trained.model(trained.transform(load_image(str(p)))[None]) for p in [query, *gallery_files]]
    feats = F.normalize(torch.cat(feats).double(), dim=1)
    distances = torch.cdist(feats[:1], feats[1:])[0]
    order = distances.argsort(stable=True)
    return [str(gallery_files[i]) for i in order], distances[order].numpy()


def test_search_equals_a_brute_force_ranking(tiny, capsys):
    folder = _gallery_copy(tiny, "gallery-brute")
    query = sorted((tiny["market"] / "query").iterdir())[0]
    code, out, err = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", query, "--gallery", folder,
                          "--topk", 7, "--json", "--batch-size", 5)
    assert code == 0, err
    hits = json.loads(out)["queries"][0]["results"]
    paths, distances = _brute_force(tiny["reid"], query, sorted(folder.glob("*.jpg")))
    assert [h["path"] for h in hits] == paths[:7]
    np.testing.assert_allclose([h["distance"] for h in hits], distances[:7], atol=1e-5)


def test_extracted_npz_gallery_ranks_as_its_folder(tiny, capsys):
    out_npz = tiny["tmp"] / "gallery.npz"
    code, _, err = _run(capsys, "extract", "--checkpoint", tiny["reid"], "--split", "gallery", "--out", out_npz)
    assert code == 0, err
    queries = tiny["market"] / "query"
    by_npz = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", queries, "--gallery", out_npz, "--json")
    by_folder = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", queries,
                     "--gallery", tiny["market"] / "bounding_box_test", "--json")
    assert by_npz[0] == by_folder[0] == 0, (by_npz[2], by_folder[2])
    a, b = json.loads(by_npz[1])["queries"], json.loads(by_folder[1])["queries"]
    assert len(a) == len(b) == len(list(queries.iterdir()))
    for qa, qb in zip(a, b):
        assert [h["path"] for h in qa["results"]] == [h["path"] for h in qb["results"]]
        np.testing.assert_allclose([h["distance"] for h in qa["results"]], [h["distance"] for h in qb["results"]], atol=1e-5)


def test_fgvc_search_ranks_by_normalised_class_token_features(tiny, capsys):
    images = sorted((tiny["fgvc_root"] / "test").rglob("*.png"))
    code, out, err = _run(capsys, "search", "--checkpoint", tiny["fgvc"], "--query", images[0],
                          "--gallery", tiny["fgvc_root"] / "train", "--json", "--topk", 3)
    assert code == 0, err
    hits = json.loads(out)["queries"][0]["results"]
    trained = load_trained(tiny["fgvc"], device="cpu")
    gallery_files = sorted((tiny["fgvc_root"] / "train").rglob("*.png"))
    with torch.no_grad():
        batch = torch.stack([trained.transform(load_image(str(p))) for p in [images[0], *gallery_files]])
        out_b = trained.model.forward_branches(batch)
    feats = F.normalize(torch.cat([out_b["sa"]["feat"], out_b["glca"]["feat"]], 1).double(), dim=1)
    distances = torch.cdist(feats[:1], feats[1:])[0]
    order = distances.argsort(stable=True)[:3]
    assert [h["path"] for h in hits] == [str(gallery_files[i]) for i in order]
    np.testing.assert_allclose([h["distance"] for h in hits], distances[order].numpy(), atol=1e-5)


def test_json_output_is_exactly_the_contract(tiny, capsys):
    queries = sorted((tiny["market"] / "query").iterdir())[:2]
    code, out, _ = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", *queries,
                        "--gallery", _gallery_copy(tiny, "gallery-json"), "--topk", 4, "--json")
    assert code == 0
    data = json.loads(out)  # stdout is the JSON object and nothing else
    assert set(data) == {"queries"} and [q["query"] for q in data["queries"]] == [str(q) for q in queries]
    for query in data["queries"]:
        assert set(query) == {"query", "results"} and len(query["results"]) == 4
        assert all(set(hit) == {"path", "distance"} and isinstance(hit["distance"], float) for hit in query["results"])
        assert [h["distance"] for h in query["results"]] == sorted(h["distance"] for h in query["results"])


def test_text_output_and_topk_beyond_the_gallery(tiny, capsys):
    folder = tiny["tmp"] / "gallery-small"
    folder.mkdir()
    for image in sorted((tiny["market"] / "bounding_box_test").glob("*.jpg"))[:3]:
        shutil.copy(image, folder / image.name)
    query = sorted((tiny["market"] / "query").iterdir())[0]
    code, out, _ = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", query, "--gallery", folder, "--topk", 10)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == str(query) and len(lines) == 1 + 3  # only three gallery images
    assert lines[1].split()[0] == "1." and lines[1].split()[2].startswith(str(folder))


def _count_extracted(monkeypatch):
    counted = []
    original = gallery_module.batch_features

    def counting(model, images):
        counted.append(len(images))
        return original(model, images)

    monkeypatch.setattr(gallery_module, "batch_features", counting)
    return counted


def test_cache_reuses_features_and_reextracts_only_changed_files(tiny, monkeypatch):
    folder = _gallery_copy(tiny, "gallery-cache")
    trained = load_trained(tiny["reid"], device="cpu")
    counted = _count_extracted(monkeypatch)
    first = open_gallery(trained, folder, batch_size=8)
    n = len(list(folder.glob("*.jpg")))
    assert sum(counted) == n and first.extracted == n and len(first) == n
    assert cache_path(folder, file_sha256(tiny["reid"])).is_file()
    features = np.concatenate(list(first.features.chunks(7)))

    counted.clear()
    second = open_gallery(trained, folder, batch_size=8)
    assert sum(counted) == 0 and second.extracted == 0 and second.reused == n  # nothing extracted
    np.testing.assert_array_equal(np.concatenate(list(second.features.chunks(100))), features)

    touched = sorted(folder.glob("*.jpg"))[5]
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    counted.clear()
    third = open_gallery(trained, folder, batch_size=8)
    assert sum(counted) == 1 and third.extracted == 1 and third.reused == n - 1
    np.testing.assert_allclose(np.concatenate(list(third.features.chunks(100))), features, atol=1e-6)

    removed = sorted(folder.glob("*.jpg"))[0]
    removed.unlink()
    (folder / "sub").mkdir()
    shutil.copy(touched, folder / "sub" / "new.jpg")
    counted.clear()
    fourth = open_gallery(trained, folder, batch_size=8)
    assert sum(counted) == 1 and fourth.removed == 1 and len(fourth) == n
    assert str(removed) not in fourth.paths and str(folder / "sub" / "new.jpg") in fourth.paths
    row = fourth.paths.index(str(folder / "sub" / "new.jpg"))
    np.testing.assert_allclose(fourth.features.take([row])[0], features[5], atol=1e-6)


def test_cache_is_per_checkpoint(tiny):
    folder = _gallery_copy(tiny, "gallery-two-models")
    open_gallery(load_trained(tiny["reid"], device="cpu"), folder)
    wide = open_gallery(load_trained(tiny["reid_wide"], device="cpu"), folder)
    assert wide.extracted == len(wide) and wide.dim == 96
    assert len(list(folder.glob(".dcal-features-*.npz"))) == 2


def test_contact_sheet_per_query(tiny, capsys):
    queries = sorted((tiny["market"] / "query").iterdir())[:2]
    out = tiny["tmp"] / "sheets"
    code, _, err = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", *queries,
                        "--gallery", tiny["market"] / "bounding_box_test", "--topk", 3, "--out", out)
    assert code == 0, err
    for query in queries:
        with Image.open(out / f"{query.stem}.png") as sheet:
            # 32x32 input at 160 pixels: four 168x198 tiles (query + 3) with 6-pixel gaps, as a rank-list row
            assert sheet.size == (4 * 168 + 5 * 6, 160 + 8 + 30)
            assert sheet.getpixel((1, 1)) == (40, 90, 220)  # the query framed blue as in the rank lists


def test_an_out_in_the_way_is_refused_before_the_search_runs(tiny, capsys, monkeypatch):
    import dcal.export.gallery

    def no_work(*args, **kwargs):
        raise AssertionError("the gallery was opened before --out was checked")

    monkeypatch.setattr(dcal.export.gallery, "open_gallery", no_work)
    in_the_way = tiny["tmp"] / "a-file"
    in_the_way.write_text("mine")
    query = sorted((tiny["market"] / "query").iterdir())[0]
    code, out, err = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", query,
                          "--gallery", tiny["market"] / "bounding_box_test", "--out", in_the_way)
    assert code == 2 and out == "" and f"--out {in_the_way} is a file" in err, err
    assert in_the_way.read_text() == "mine"


def test_bad_queries_and_galleries_are_one_line_errors(tiny, capsys):
    empty = tiny["tmp"] / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "notes.txt").write_text("no images here")
    query = sorted((tiny["market"] / "query").iterdir())[0]
    gallery = tiny["market"] / "bounding_box_test"
    cases = [
        (["--query", empty, "--gallery", gallery], [f"--query: folder {empty} holds no images"]),
        (["--query", query, "--gallery", empty], [f"gallery folder {empty} holds no images"]),
        (["--query", query, "--gallery", tiny["tmp"] / "missing"], ["missing not found"]),
        (["--query", tiny["tmp"] / "nope.jpg", "--gallery", gallery], ["nope.jpg not found"]),
        (["--query", query, "--gallery", tiny["reid"]], ["expected a folder of images or a .npz"]),
    ]
    for args, expected in cases:
        code, out, err = _run(capsys, "search", "--checkpoint", tiny["reid"], *args)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert all(text in err for text in expected), err


def test_npz_of_another_model_or_task_or_format(tiny, capsys):
    query = sorted((tiny["market"] / "query").iterdir())[0]
    wide = tiny["tmp"] / "wide.npz"
    assert main(["extract", "--checkpoint", str(tiny["reid_wide"]), "--split", "gallery", "--out", str(wide)]) == 0
    fgvc = tiny["tmp"] / "fgvc.npz"
    assert main(["extract", "--checkpoint", str(tiny["fgvc"]), "--split", "test", "--out", str(fgvc)]) == 0
    with np.load(wide) as data:  # as written before extract recorded the checkpoint's hash
        arrays = {key: data[key] for key in data.files}
    metadata = json.loads(str(arrays["metadata"]))
    del metadata["checkpoint_sha256"]
    arrays["metadata"] = np.asarray(json.dumps(metadata))
    np.savez(wide, **arrays)
    other = tiny["tmp"] / "other.npz"  # same architecture, other weights
    assert main(["extract", "--checkpoint", str(tiny["reid_other"]), "--split", "gallery", "--out", str(other)]) == 0
    foreign = tiny["tmp"] / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    capsys.readouterr()
    cases = [
        (wide, [str(wide), "dimension 96", "dimension 64", "another model"]),
        (other, [str(other), "features of another model", str(tiny["reid_other"]), str(tiny["reid"])]),
        (fgvc, [str(fgvc), "holds fgvc features", "reid checkpoint"]),
        (foreign, [str(foreign), "not a feature file of dcal extract"]),
    ]
    for path, expected in cases:
        code, out, err = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", query, "--gallery", path)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        assert all(text in err for text in expected), err


def test_corrupt_gallery_image_is_named_and_skipped_on_request(tiny, capsys):
    folder = _gallery_copy(tiny, "gallery-corrupt")
    bad = folder / "0999_c1s1_999999_00.jpg"
    bad.write_bytes(b"not a jpeg")
    query = sorted((tiny["market"] / "query").iterdir())[0]
    code, out, err = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", query, "--gallery", folder)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert str(bad) in err and "--skip-corrupt" in err
    for _ in range(2):  # the second time the cache already knows the file is unreadable
        code, out, err = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", query, "--gallery", folder,
                              "--skip-corrupt", "--json", "--topk", 100)
        assert code == 0, err
        assert str(bad) in err and "1 unreadable skipped" in err
        paths = [h["path"] for h in json.loads(out)["queries"][0]["results"]]
        assert len(paths) == len(list(folder.glob("*.jpg"))) - 1 and str(bad) not in paths
    code, _, err = _run(capsys, "search", "--checkpoint", tiny["reid"], "--query", query, "--gallery", folder)
    assert code == 2 and str(bad) in err  # without --skip-corrupt a known unreadable image still stops it


def test_chunked_topk_equals_the_dense_reference():
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(1000, 24)).astype(np.float32)
    gallery[500] = gallery[10]  # a duplicate: equal distances, the lower index first
    query = np.concatenate([rng.normal(size=(6, 24)), gallery[10:11]]).astype(np.float32)
    for chunk_rows, k in ((64, 10), (1000, 10), (7, 1), (128, 1500)):
        chunks = (gallery[i:i + chunk_rows] for i in range(0, len(gallery), chunk_rows))
        distances, indices = nearest(query, chunks, k, query_rows=3)
        dense_d, dense_i = nearest_dense(query, gallery, k)
        # The same ranking, except that two distances equal to float32 rounding (a chunk's matrix product
        # rounds differently from the full one's) may come in either order.
        swapped = indices != dense_i
        exact = np.sqrt(np.maximum(0, 2 - 2 * unit_rows(query).double().numpy() @ unit_rows(gallery).double().numpy().T))
        assert np.all(np.abs(np.take_along_axis(exact, indices, 1) - np.take_along_axis(exact, dense_i, 1))[swapped] < 1e-6)
        assert swapped.sum() <= 0.001 * swapped.size
        np.testing.assert_allclose(distances, dense_d, atol=1e-6)
        assert indices.shape == (7, min(k, 1000))
    assert list(indices[-1, :2]) == [10, 500]
