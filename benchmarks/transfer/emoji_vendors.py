"""The Re-ID set: emoji drawn by different vendors as a ``reid_list`` layout with cameras.

Identity = one emoji (a code point sequence, U+FE0F ignored; skin-tone variants left out: they differ
from their base emoji in colour only), camera = one drawing set.  Two kinds of npm package hold them:

- ``emoji-datasource-<vendor>``: ``emoji.json`` (``unified`` code points, ``image`` file name,
  ``has_img_<vendor>``) and 64×64 PNGs under ``img/<vendor>/64/``;
- ``@iconify-json/<set>``: ``icons.json`` (SVG bodies, ``aliases``) and ``chars.json`` (code points →
  icon name).  Some sets ship an empty ``chars.json``; their icons are matched by name against the
  names the other sets and ``emoji.json`` give each code point sequence (a name that matches several
  emoji is left out).  SVGs are rendered at 64×64 with ``cairosvg``.

Kept: emoji drawn by at least ``min_sources`` of the chosen sets, the query set among them.  Half of
them (random, ``seed``) are the training identities (``train.txt``: every drawing), the other half are
tested: the query set's drawing is the query (``query.txt``), the other sets' drawings the gallery
(``gallery.txt``).  Lines are ``<path> <pid> <camid>``, ``camid`` the set's index in ``cameras.tsv``.

Validation: ``val/`` is the same layout for model selection, its lists pointing at ``../images/``:
``val_fraction`` of the training identities are its query and gallery (by the same rule) and the other
training identities its ``train.txt``; the test identities are not in it.  (dcal's own
``data.val_fraction`` hold-out does not fit this set: it takes one image per identity and camera as
a query, and with one drawing per emoji and set that leaves its gallery empty.)
"""

from __future__ import annotations

import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from composite import save_rgb

SKIN_TONES = frozenset({"1f3fb", "1f3fc", "1f3fd", "1f3fe", "1f3ff"})
SIZE = 64


@dataclass(frozen=True)
class Source:
    """One drawing set: its npm package, kind and licence."""
    name: str
    package: str
    kind: str          # "datasource" or "iconify"
    licence: str
    note: str = ""


SOURCES = {s.name: s for s in (
    Source("google", "emoji-datasource-google", "datasource", "Apache-2.0", "Noto Emoji (Google)"),
    Source("twitter", "emoji-datasource-twitter", "datasource", "CC-BY-4.0", "Twemoji (Twitter)"),
    Source("noto-v1", "@iconify-json/noto-v1", "iconify", "Apache-2.0", "Noto Emoji before 2017 (Google)"),
    Source("fluent", "@iconify-json/fluent-emoji", "iconify", "MIT", "Fluent Emoji, colour (Microsoft)"),
    Source("fluent-flat", "@iconify-json/fluent-emoji-flat", "iconify", "MIT", "Fluent Emoji, flat (Microsoft)"),
    Source("emojione", "@iconify-json/emojione", "iconify", "CC-BY-4.0", "EmojiOne 2"),
    Source("emojione-v1", "@iconify-json/emojione-v1", "iconify", "CC-BY-SA-4.0", "EmojiOne 1"),
    Source("fxemoji", "@iconify-json/fxemoji", "iconify", "Apache-2.0", "Firefox OS emoji (Mozilla)"),
    Source("openmoji", "@iconify-json/openmoji", "iconify", "CC-BY-SA-4.0", "OpenMoji"),
    # Not used unless asked for: the same drawings as google / twitter, monochrome, or not freely licensed.
    Source("noto", "@iconify-json/noto", "iconify", "Apache-2.0", "same drawings as google"),
    Source("twemoji", "@iconify-json/twemoji", "iconify", "CC-BY-4.0", "same drawings as twitter"),
    Source("emojione-monotone", "@iconify-json/emojione-monotone", "iconify", "CC-BY-4.0", "monochrome"),
    Source("fluent-high-contrast", "@iconify-json/fluent-emoji-high-contrast", "iconify", "MIT", "monochrome"),
    Source("apple", "emoji-datasource-apple", "datasource", "Apple Inc.: not licensed for commercial use",
           "not freely licensed"),
    Source("facebook", "emoji-datasource-facebook", "datasource", "Facebook, Inc.: no clear licence",
           "not freely licensed"),
)}
DEFAULT_SOURCES = ("google", "twitter", "noto-v1", "fluent", "fluent-flat", "emojione", "emojione-v1", "fxemoji",
                   "openmoji")
# Sets whose chars.json (and emoji.json) name every code point sequence: the index that matches the
# icons of sets without a chars.json by name.
NAME_INDEX = ("google", "noto", "twemoji", "openmoji", "fluent-flat")


def members(source: Source) -> list[str]:
    """The files of the package that are needed (the prefixes :func:`sources.fetch_npm` takes)."""
    if source.kind == "datasource":
        vendor = source.package.rsplit("-", 1)[1]
        return ["package/emoji.json", f"package/img/{vendor}/64/"]
    return ["package/icons.json", "package/chars.json"]


def identity_key(code_points: str) -> str:
    """``1F170-FE0F`` → ``1f170``: lower-case hex joined by ``-``, without U+FE0F."""
    return "-".join(p for p in re.split(r"[-_ ]", code_points.lower()) if p and p != "fe0f")


def is_skin_tone_variant(key: str) -> bool:
    return bool(SKIN_TONES & set(key.split("-")))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# --- what each set draws: identity key -> a drawing ------------------------------------------------

def datasource_drawings(tree: Path, source: Source) -> dict[str, Path]:
    """Identity key → 64×64 PNG of an ``emoji-datasource-<vendor>`` tree."""
    vendor = source.package.rsplit("-", 1)[1]
    drawings = {}
    for entry in json.loads((tree / "emoji.json").read_text(encoding="utf-8")):
        path = tree / "img" / vendor / "64" / entry["image"]
        key = identity_key(entry["unified"])
        if entry.get(f"has_img_{vendor}") and path.is_file() and not is_skin_tone_variant(key):
            drawings[key] = path
    return drawings


def iconify_svgs(tree: Path) -> dict[str, str]:
    """Icon name → standalone SVG text of an ``@iconify-json`` tree (aliases that only rename)."""
    data = json.loads((tree / "icons.json").read_text(encoding="utf-8"))
    icons = data["icons"]
    svgs = {}
    names = {name: name for name in icons}
    names.update({alias: spec["parent"] for alias, spec in data.get("aliases", {}).items()
                  if spec.get("parent") in icons and not set(spec) - {"parent"}})
    for name, parent in names.items():
        icon = icons[parent]
        left, top = icon.get("left", data.get("left", 0)), icon.get("top", data.get("top", 0))
        width, height = icon.get("width", data.get("width", 16)), icon.get("height", data.get("height", 16))
        svgs[name] = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                      f'width="{SIZE}" height="{SIZE}" viewBox="{left} {top} {width} {height}">'
                      f'{icon["body"]}</svg>')
    return svgs


def iconify_chars(tree: Path) -> dict[str, str]:
    """Code points → icon name from ``chars.json`` (``{}`` where the set ships none)."""
    path = tree / "chars.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def name_index(trees: dict[str, Path]) -> dict[str, set[str]]:
    """Names (and the same without hyphens) → identity keys, from the :data:`NAME_INDEX` sets found in
    ``trees``: their ``chars.json`` icon names, ``emoji.json``'s names and short names."""
    index: dict[str, set[str]] = {}

    def add(name, key):
        for form in {name, name.replace("-", "")}:
            index.setdefault(form, set()).add(key)

    for source_name in NAME_INDEX:
        if source_name not in trees:
            continue
        tree = trees[source_name]
        if SOURCES[source_name].kind == "datasource":
            for entry in json.loads((tree / "emoji.json").read_text(encoding="utf-8")):
                for name in [entry.get("name") or "", *entry.get("short_names", [])]:
                    if name:
                        add(slug(name), identity_key(entry["unified"]))
        else:
            for code_points, name in iconify_chars(tree).items():
                add(name, identity_key(code_points))
    return index


def iconify_drawings(tree: Path, index: dict[str, set[str]]) -> dict[str, str]:
    """Identity key → SVG text of an ``@iconify-json`` tree: by ``chars.json``, else by name through
    ``index`` (names that match no emoji or several are left out); the first icon name in sorted
    order where several draw one emoji."""
    svgs = iconify_svgs(tree)
    chars = iconify_chars(tree)
    names_of: dict[str, list[str]] = {}
    if chars:
        for code_points, name in chars.items():
            if name in svgs:
                names_of.setdefault(identity_key(code_points), []).append(name)
    else:
        for name in svgs:
            keys = index.get(name) or index.get(name.replace("-", "")) or set()
            if len(keys) == 1:
                names_of.setdefault(next(iter(keys)), []).append(name)
    return {key: svgs[min(names)] for key, names in names_of.items() if not is_skin_tone_variant(key)}


def drawings_of(trees: dict[str, Path], chosen: list[str]) -> dict[str, dict[str, object]]:
    """Set name → (identity key → PNG path or SVG text), for the ``chosen`` sets."""
    index = name_index(trees)
    return {name: (datasource_drawings(trees[name], SOURCES[name]) if SOURCES[name].kind == "datasource"
                   else iconify_drawings(trees[name], index))
            for name in chosen}


def emoji_names(trees: dict[str, Path]) -> dict[str, str]:
    """Identity key → a readable name, from whichever ``emoji.json`` or ``chars.json`` names it first."""
    names: dict[str, str] = {}
    for source_name, tree in sorted(trees.items()):
        if SOURCES[source_name].kind == "datasource":
            for entry in json.loads((tree / "emoji.json").read_text(encoding="utf-8")):
                names.setdefault(identity_key(entry["unified"]), (entry.get("name") or entry["short_name"]).lower())
        else:
            for code_points, name in iconify_chars(tree).items():
                names.setdefault(identity_key(code_points), name.replace("-", " "))
    return names


# --- writing the set -------------------------------------------------------------------------------

def render(drawing, target: Path) -> bool:
    """A PNG path or SVG text as a 64×64 RGB PNG on white; ``False`` where cairo cannot draw the SVG
    (a few icons make it fail: ``CAIRO_STATUS_NO_MEMORY``)."""
    if isinstance(drawing, Path):
        save_rgb(drawing, target)
        return True
    import cairosvg   # checked by prepare.py before any work; only SVG sets need it
    try:
        png = cairosvg.svg2png(bytestring=drawing.encode("utf-8"), output_width=SIZE, output_height=SIZE)
    except (MemoryError, ValueError) as error:
        print(f"emoji: {target.parent.name}/{target.stem} not rendered ({error}); left out", file=sys.stderr)
        return False
    save_rgb(Image.open(io.BytesIO(png)), target)
    return True


def build(trees: dict[str, Path], out: Path, *, chosen: list[str], query: str, min_sources: int,
          max_identities: int | None = None, val_fraction: float = 0.2, seed: int = 0) -> dict:
    """Write ``out/images/<set>/<key>.png``, ``train.txt``, ``query.txt``, ``gallery.txt``,
    ``cameras.tsv``, ``identities.tsv`` and the validation layout ``out/val/``; return the counts.
    The identities are chosen from what the sets list; a drawing that fails to render is left out,
    and so is its emoji if it then has fewer than ``min_sources`` drawings or lost the query's."""
    if query not in chosen:
        raise ValueError(f"the query set {query!r} is not among the chosen sets {chosen}")
    drawings = drawings_of(trees, chosen)

    def sources_of(key):
        return [name for name in chosen if key in drawings[name]]

    def eligible(key):
        names = sources_of(key)
        return len(names) >= min_sources and query in names

    keys = sorted(k for k in set().union(*drawings.values()) if eligible(k))
    listed = len(keys)
    if max_identities is not None and max_identities < len(keys):
        keys = sorted(keys[i] for i in np.random.default_rng([seed, 3]).permutation(len(keys))[:max_identities])
    failures = 0
    for key in keys:
        for name in sources_of(key):
            if not render(drawings[name][key], out / "images" / name / f"{key}.png"):
                del drawings[name][key]
                failures += 1
    for key in [k for k in keys if not eligible(k)]:
        for name in sources_of(key):
            (out / "images" / name / f"{key}.png").unlink()
    keys = [k for k in keys if eligible(k)]
    order = np.random.default_rng([seed, 4]).permutation(len(keys))
    train_keys = [keys[i] for i in sorted(order[:len(keys) // 2])]
    test_keys = [keys[i] for i in sorted(order[len(keys) // 2:])]
    held = np.random.default_rng([seed, 5]).permutation(len(train_keys))[:int(round(val_fraction * len(train_keys)))]
    val_keys = [train_keys[i] for i in sorted(held)]
    pid = {key: index for index, key in enumerate(keys)}
    camera = {name: camid for camid, name in enumerate(chosen)}

    def write(folder, trained, tested, image_root=""):
        """``train.txt`` lists every drawing of ``trained``; of ``tested``, the query set's drawings are
        the queries and the others the gallery."""
        lists: dict[str, list[str]] = {"train": [], "query": [], "gallery": []}
        for role_keys, tested_role in ((trained, False), (tested, True)):
            for key in role_keys:
                for name in sources_of(key):
                    split = "train" if not tested_role else "query" if name == query else "gallery"
                    lists[split].append(f"{image_root}images/{name}/{key}.png {pid[key]} {camera[name]}")
        folder.mkdir(parents=True, exist_ok=True)
        for split, split_lines in lists.items():
            (folder / f"{split}.txt").write_text("".join(line + "\n" for line in split_lines))
        return {f"{split}_images": len(split_lines) for split, split_lines in lists.items()}

    counts = write(out, train_keys, test_keys)
    val_set = set(val_keys)
    val_counts = write(out / "val", [k for k in train_keys if k not in val_set], val_keys, "../")
    names = emoji_names(trees)
    split_of = {**{k: "train" for k in train_keys}, **{k: "val" for k in val_keys}, **{k: "test" for k in test_keys}}
    identities = ["pid\tcode_points\tname\tsplit\tsets"] + [
        f"{pid[key]}\t{key}\t{names.get(key, '')}\t{split_of[key]}\t{len(sources_of(key))}" for key in keys]
    (out / "identities.tsv").write_text("\n".join(identities) + "\n")
    (out / "cameras.tsv").write_text("camid\tset\tpackage\tlicence\n" + "".join(
        f"{camid}\t{name}\t{SOURCES[name].package}\t{SOURCES[name].licence}\n" for name, camid in camera.items()))
    return {"listed_identities": listed, "identities": len(keys), "train_identities": len(train_keys),
            "test_identities": len(test_keys), "cameras": len(chosen), **counts,
            "val_identities": len(val_keys), **{f"val_{k}": v for k, v in val_counts.items()},
            "images_per_camera": {name: sum(1 for k in keys if k in drawings[name]) for name in chosen},
            "not_rendered": failures}
