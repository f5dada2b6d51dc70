"""benchmarks/transfer/prepare.py on tiny fake copies of its sources' layouts (nothing is downloaded):
the Wesnoth units folder of the Debian package, ``emoji-datasource-*`` and ``@iconify-json/*`` trees."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dcal.data import image_folder, reid_list

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks" / "transfer"))

import emoji_vendors  # noqa: E402
import sources  # noqa: E402
import wesnoth_sprites  # noqa: E402

try:
    import cairosvg  # noqa: F401
    HAVE_CAIRO = True
except (ImportError, OSError):   # OSError: the package is there but the cairo library is not
    HAVE_CAIRO = False

UNITS = "usr/share/games/wesnoth/1.16/data/core/images/units"
DROPPED = ["white-mage-die-1", "white-mage-dying-2", "white-mage-teleport-1", "white-mage-death"]


def _sprite(path: Path, colour, mode="RGBA"):
    image = Image.new("RGBA", (6, 6), (*colour, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))          # transparent: the background shows
    path.parent.mkdir(parents=True, exist_ok=True)
    (image if mode == "RGBA" else image.convert("P")).save(path)


def write_units(units: Path) -> None:
    """white-mage: 11 frames in 5 animation groups (+ 4 dropped); mage: 9 frames (under 10);
    troll-whelp: a unit whose name extends the unit troll; a sub-folder unit of one animation group."""
    stems = (["white-mage"] + [f"white-mage-idle-{i}" for i in range(1, 5)]
             + [f"white-mage-attack-{i}" for i in range(1, 4)] + ["white-mage-defend"]
             + ["white-mage-ranged1", "white-mage-ranged2"] + DROPPED)
    stems += ["mage"] + [f"mage-idle-{i}" for i in range(1, 9)] + ["mage-die-1"]
    stems += ["troll", "troll-whelp"] + [f"troll-idle-{i}" for i in range(1, 9)]
    stems += [f"troll-whelp-idle-{i}" for i in range(1, 11)] + ["troll-whelp-attack-1", "troll-whelp-attack-2"]
    for index, stem in enumerate(stems):
        _sprite(units / "magi" / f"{stem}.png", (10 * (index % 20), 100, 200), mode="P" if index % 7 == 0 else "RGBA")
    for i, stem in enumerate(["scout"] + [f"scout-{i}" for i in range(1, 10)]):   # one animation group
        _sprite(units / "elves" / "scout" / f"{stem}.png", (200, 20 * i, 0))


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _by_split(root: Path) -> dict:
    return {split: {cls.name: sorted(f.stem for f in cls.iterdir()) for cls in sorted((root / split).iterdir())}
            for split in ("train", "val", "test") if (root / split).is_dir()}


def test_unit_of_takes_the_longest_existing_prefix():
    stems = {"mage", "white-mage", "white-mage-idle-3", "troll", "troll-whelp", "troll-whelp-idle-1"}
    assert wesnoth_sprites.unit_of("white-mage-idle-3", stems) == "white-mage"
    assert wesnoth_sprites.unit_of("troll-whelp-idle-1", stems) == "troll-whelp"
    assert wesnoth_sprites.unit_of("white-mage", stems) == "white-mage"
    assert wesnoth_sprites.animation_group("-attack-magic1") == "attack-magic"
    assert wesnoth_sprites.animation_group("-idle-3") == "idle"
    assert wesnoth_sprites.animation_group("") == ""


def test_wesnoth_classes_frames_and_split(tmp_path):
    units = tmp_path / "units"
    write_units(units)
    out = tmp_path / "out"
    counts = wesnoth_sprites.build(units, out, train_frames=5, val_frames=2, seed=0)
    split = _by_split(out)
    # mage has 9 frames left (its die frame dropped): under the threshold of 10
    assert sorted(split["test"]) == ["elves.scout.scout", "magi.troll", "magi.troll-whelp", "magi.white-mage"]
    assert counts["classes"] == 4 and counts["frames"] == 11 + 10 + 12 + 10
    every = {stem for per_split in split.values() for stems in per_split.values() for stem in stems}
    assert not every & set(DROPPED)
    stems_of = {name: {f.path.stem for f in frames} for name, frames in wesnoth_sprites.frames_by_unit(units).items()}
    assert stems_of["magi.troll-whelp"] == {f"troll-whelp-idle-{i}" for i in range(1, 11)} | {
        "troll-whelp-attack-1", "troll-whelp-attack-2"}                   # the longest existing prefix
    assert stems_of["magi.troll"] == {"troll", "troll-whelp"} | {f"troll-idle-{i}" for i in range(1, 9)}
    assert len(stems_of["magi.mage"]) == 9 and "mage-die-1" not in stems_of["magi.mage"]
    # several animations: no group on two sides; the training set holds 5 frames
    group = {stem: wesnoth_sprites.animation_group(stem[len("white-mage"):]) for stem in every
             if stem.startswith("white-mage")}
    sides = [{group[s] for s in split[name].get("magi.white-mage", [])} for name in ("train", "val", "test")]
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    assert len(split["train"]["magi.white-mage"]) == 5
    # one animation (elves' scout): split by frames, 5 trained on, none shared
    scout = [set(split[s].get("elves.scout.scout", [])) for s in ("train", "val", "test")]
    assert len(scout[0]) == 5 and sum(map(len, scout)) == 10 and not scout[0] & scout[2]
    # composited onto white, RGB, size kept
    image = Image.open(next((out / "train" / "magi.white-mage").iterdir()))
    assert image.mode == "RGB" and image.size == (6, 6) and image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((3, 3))[1:] == (100, 200)
    loaded = image_folder.load(out)
    assert loaded.num_classes == 4
    assert {name: len(loaded.splits[name]) for name in ("train", "val", "test")} == \
        {name: counts[name] for name in ("train", "val", "test")}


def test_wesnoth_is_deterministic_and_follows_its_options(tmp_path):
    units = tmp_path / "units"
    write_units(units)
    wesnoth_sprites.build(units, tmp_path / "a", seed=0)
    wesnoth_sprites.build(units, tmp_path / "b", seed=0)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    wesnoth_sprites.build(units, tmp_path / "c", seed=1)
    assert _by_split(tmp_path / "c") != _by_split(tmp_path / "a")
    assert sorted(_by_split(tmp_path / "c")["test"]) == sorted(_by_split(tmp_path / "a")["test"])
    only_magi = wesnoth_sprites.build(units, tmp_path / "d", folders=["magi"], min_frames=9)
    assert sorted(_by_split(tmp_path / "d")["test"]) == ["magi.mage", "magi.troll", "magi.troll-whelp",
                                                          "magi.white-mage"]
    assert only_magi["classes"] == 4
    for split in ("train", "val", "test"):          # a unit's split does not depend on the others chosen
        assert _by_split(tmp_path / "d")[split].get("magi.white-mage") == \
            _by_split(tmp_path / "a")[split].get("magi.white-mage")
    two = wesnoth_sprites.build(units, tmp_path / "e", max_classes=2)
    assert two["classes"] == 2 and set(_by_split(tmp_path / "e")["train"]) < set(_by_split(tmp_path / "a")["train"])


# --- emoji -------------------------------------------------------------------------------------------

EMOJI = {  # code points -> (name, sets that draw it)
    "1F600": ("GRINNING FACE", {"google", "twitter", "openmoji", "emojione"}),
    "1F601": ("BEAMING FACE", {"google", "twitter", "openmoji", "emojione"}),
    "2764-FE0F": ("RED HEART", {"google", "twitter", "openmoji", "emojione"}),
    "1F680": ("ROCKET", {"google", "twitter", "openmoji", "emojione"}),
    "1F34E": ("RED APPLE", {"google", "twitter", "openmoji", "emojione"}),
    "1F431": ("CAT FACE", {"google", "twitter", "openmoji"}),
    "1F436": ("DOG FACE", {"google", "twitter", "emojione"}),
    "1F40D": ("SNAKE", {"twitter", "openmoji", "emojione"}),       # no query drawing
    "1F422": ("TURTLE", {"google"}),                               # too few sets
    "1F44D-1F3FB": ("THUMBS UP LIGHT", {"google", "twitter", "openmoji", "emojione"}),   # a skin tone
}


def _png(path: Path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGBA", (4, 4), (*colour, 255)).save(path)


def write_emoji_trees(root: Path) -> dict:
    trees = {}
    for index, vendor in enumerate(("google", "twitter")):
        tree = root / vendor / "package"
        entries = []
        for number, (code_points, (name, sets)) in enumerate(sorted(EMOJI.items())):
            image = code_points.lower() + ".png"
            entries.append({"unified": code_points, "image": image, "name": name,
                            "short_name": name.lower().replace(" ", "_"), "short_names": [name.lower().replace(" ", "_")],
                            f"has_img_{vendor}": vendor in sets})
            if vendor in sets:
                _png(tree / "img" / vendor / "64" / image, (40 * index, 20 * number, 100))
        tree.mkdir(parents=True, exist_ok=True)
        (tree / "emoji.json").write_text(json.dumps(entries))
        trees[vendor] = tree
    for vendor, with_chars in (("openmoji", True), ("emojione", False)):
        tree = root / vendor / "package"
        tree.mkdir(parents=True)
        icons, chars = {}, {}
        for number, (code_points, (name, sets)) in enumerate(sorted(EMOJI.items())):
            if vendor in sets:
                icon = emoji_vendors.slug(name)
                icons[icon] = {"body": f'<rect width="16" height="16" fill="#{number:02x}80c0"/>'}
                chars[code_points.lower().replace("-fe0f", "")] = icon
        if not with_chars:
            icons["red"] = {"body": "<rect/>"}       # matches no emoji: left out
        (tree / "icons.json").write_text(json.dumps({"prefix": vendor, "icons": icons, "width": 16, "height": 16,
                                                     "aliases": {"heart": {"parent": "red-heart"}}}))
        (tree / "chars.json").write_text(json.dumps(chars if with_chars else {}))
        trees[vendor] = tree
    return trees


def _lines(path: Path) -> list[tuple[str, int, int]]:
    return [(p, int(pid), int(cam)) for p, pid, cam in (line.split() for line in path.read_text().splitlines())]


def _check_emoji_layout(out: Path, chosen: list[str], counts: dict):
    camera = {name: camid for camid, name in enumerate(chosen)}
    train, query, gallery = (_lines(out / f"{s}.txt") for s in ("train", "query", "gallery"))
    train_ids, test_ids = {pid for _, pid, _ in train}, {pid for _, pid, _ in query}
    assert not train_ids & test_ids
    assert {pid for _, pid, _ in gallery} == test_ids
    assert len(train_ids) == counts["identities"] // 2 and len(test_ids) == counts["identities"] - len(train_ids)
    assert {cam for _, _, cam in query} == {camera["google"]}
    assert camera["google"] not in {cam for _, _, cam in gallery}
    assert all(path.startswith(f"images/{chosen[cam]}/") for path, _, cam in train + query + gallery)
    keys = {line.split("\t")[0]: line.split("\t")[1] for line in (out / "identities.tsv").read_text().splitlines()[1:]}
    assert "1f44d-1f3fb" not in keys.values() and "1f422" not in keys.values()   # skin tone, too few sets
    assert "2764" in keys.values()                                             # U+FE0F ignored
    loaded = reid_list.load(out)
    assert loaded.num_classes == len(train_ids) and len(loaded.splits["gallery"]) == len(gallery)
    val = reid_list.load(out / "val")
    val_query = {r.pid for r in val.splits["query"]}
    assert val_query and val_query <= train_ids
    assert not {int(line.split()[1]) for line in (out / "val" / "train.txt").read_text().splitlines()} & val_query
    assert len(val.splits["gallery"]) > 0


def test_iconify_icons_matched_by_name_only_where_the_name_is_one_emoji(tmp_path):
    (tmp_path / "icons.json").write_text(json.dumps({"prefix": "x", "width": 16, "height": 16, "icons": {
        "pet": {"body": "<rect/>"}, "rocket": {"body": "<rect/>"}, "thumbs-up-light": {"body": "<rect/>"},
        "alarmclock": {"body": "<rect/>"}}, "aliases": {"spaceship": {"parent": "rocket", "hFlip": True}}}))
    index = {"pet": {"1f431", "1f436"}, "rocket": {"1f680"}, "thumbs-up-light": {"1f44d-1f3fb"},
             "alarmclock": {"23f0"}, "spaceship": {"1f6f8"}}
    drawings = emoji_vendors.iconify_drawings(tmp_path, index)
    # "pet" names two emoji, the skin tone is left out, the flipped alias is no plain rename
    assert sorted(drawings) == ["1f680", "23f0"]
    assert 'viewBox="0 0 16 16"' in drawings["1f680"]


def test_emoji_from_the_datasource_sets(tmp_path):
    trees = write_emoji_trees(tmp_path / "trees")
    chosen = ["google", "twitter"]
    out = tmp_path / "out"
    counts = emoji_vendors.build(trees, out, chosen=chosen, query="google", min_sources=2, val_fraction=0.5)
    # every emoji drawn by both (not the skin tone): 1F600, 1F601, 2764, 1F680, 1F34E, 1F431, 1F436
    assert counts["identities"] == 7 and counts["cameras"] == 2
    _check_emoji_layout(out, chosen, counts)
    image = Image.open(out / "images" / "twitter" / "1f600.png")
    assert image.mode == "RGB"
    emoji_vendors.build(trees, tmp_path / "again", chosen=chosen, query="google", min_sources=2, val_fraction=0.5)
    assert _files(out) == _files(tmp_path / "again")
    capped = emoji_vendors.build(trees, tmp_path / "capped", chosen=chosen, query="google", min_sources=2,
                                 max_identities=4)
    assert capped["identities"] == 4 and capped["train_identities"] == 2


@pytest.mark.skipif(not HAVE_CAIRO, reason="cairosvg (pip install 'dcal[transfer]') renders the SVG sets")
def test_emoji_with_svg_sets_matched_by_code_point_and_by_name(tmp_path):
    trees = write_emoji_trees(tmp_path / "trees")
    chosen = ["google", "twitter", "openmoji", "emojione"]
    out = tmp_path / "out"
    counts = emoji_vendors.build(trees, out, chosen=chosen, query="google", min_sources=3, val_fraction=0.5, seed=3)
    # >= 3 sets with google: the 5 drawn by all four, cat (no emojione) and dog (no openmoji); not snake
    assert counts["identities"] == 7
    assert counts["images_per_camera"] == {"google": 7, "twitter": 7, "openmoji": 6, "emojione": 6}
    _check_emoji_layout(out, chosen, counts)
    svg = Image.open(out / "images" / "emojione" / "1f600.png")
    assert svg.mode == "RGB" and svg.size == (64, 64)
    emoji_vendors.build(trees, tmp_path / "again", chosen=chosen, query="google", min_sources=3, val_fraction=0.5,
                        seed=3)
    assert _files(out) == _files(tmp_path / "again")


def test_prepare_script_reads_its_cache_offline_and_keeps_foreign_folders(tmp_path):
    cache = tmp_path / "cache"
    write_units(sources.tree(cache, "wesnoth-1.16-data") / UNITS)
    trees = write_emoji_trees(tmp_path / "trees")
    for name in ("google", "twitter"):
        target = sources.tree(cache, emoji_vendors.SOURCES[name].package)
        target.mkdir(parents=True)
        trees[name].rename(target / "package")
    for package in ("wesnoth-1.16-data", "emoji-datasource-google", "emoji-datasource-twitter"):
        (sources.tree(cache, package) / sources.COMPLETE).write_text("fake-1.0\n")
    command = [sys.executable, str(REPO / "benchmarks" / "transfer" / "prepare.py"), "--root", str(tmp_path / "data"),
               "--cache", str(cache), "--wesnoth-folders", "all", "--emoji-sources", "google", "twitter",
               "--emoji-min-sources", "2"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout)
    assert counts["wesnoth"]["classes"] == 4 and counts["emoji"]["identities"] == 7
    assert image_folder.load(tmp_path / "data" / "wesnoth").num_classes == 4
    assert "fake-1.0" in (tmp_path / "data" / "emoji" / "SOURCES.txt").read_text()
    again = subprocess.run(command, capture_output=True, text=True)      # a re-run replaces its own output
    assert again.returncode == 0 and json.loads(again.stdout) == counts
    foreign = tmp_path / "other"
    (foreign / "wesnoth").mkdir(parents=True)
    (foreign / "wesnoth" / "mine.txt").write_text("not the script's")
    refused = subprocess.run(command[:3] + [str(foreign)] + command[4:], capture_output=True, text=True)
    assert refused.returncode != 0 and "was not written by this script" in refused.stderr
    assert (foreign / "wesnoth" / "mine.txt").exists()
