"""Every ViT timm lists, through ``dcal.create_model``: built with an SA feature equal to timm's own
forward, or refused with a :class:`~dcal.errors.DCALError` saying why — never a crash; prints JSON.

The names are ``timm.list_models`` of ``vit_*``, ``deit*`` and ``eva*``, built with
``pretrained=False`` at a small input (``--patches`` × ``--patches`` patches of the model's own
patch size).  To keep the sweep cheap on a small CPU the models are *shrunk* through timm's keyword
arguments (``depth``, ``embed_dim``, ``num_heads``, ``--shrink``); a model whose architecture fixes
those (per-block head lists, fixed feature widths) is built again with the width alone, then with
the depth alone; one that timm cannot build small in any of these ways is built at its own size on
the meta device (no memory), where it is refused or, if built, counted as ``"unchecked"``.  Which
of these each model needed is counted under ``"built_with"`` (refused models included); the
classification does not depend on the width, since DCAL's checks read the block and attention
types, the class token and the pooling.

A built model runs ``forward_branches`` in eval mode on random images; its SA feature is compared
with ``vit.forward_head(vit.forward_features(x), pre_logits=True)`` (largest absolute difference
below ``--atol``).  ``"crashed"`` lists every model where anything other than a ``DCALError`` was
raised (it must be empty); ``"built_not_equal"`` every model whose SA feature differs.

Run: ``python benchmarks/timm_vit_sweep.py`` (one to three minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter

import timm
import torch

import dcal
from dcal.errors import DCALError

PATTERNS = ("vit_*", "deit*", "eva*")


def patch_size(name: str, kwargs: dict) -> tuple[int, int]:
    """Input pixels per token along each side (the patch size; a hybrid's CNN stride), from a copy
    built on the meta device (no memory, no weights)."""
    with torch.device("meta"):
        embed = timm.create_model(name, num_classes=0, **kwargs).patch_embed
    return tuple(int(size) // int(grid) for size, grid in zip(embed.img_size, embed.grid_size))


def attempts(shrink: dict) -> list[tuple[str, dict]]:
    """The option sets tried in turn: all of ``shrink``; its width alone (architectures with a list
    per block fix the depth); its depth alone (those with fixed feature widths).  A model is never
    built at its own size: the largest (``vit_7b``) would not fit in memory."""
    width = {key: value for key, value in shrink.items() if key != "depth"}
    return [("shrunk", shrink), ("width only", width), ("depth only", {"depth": shrink["depth"]})]


def sweep_one(name: str, shrink: dict, patches: int, atol: float) -> tuple[str, str, str]:
    """``(outcome, detail, built_with)``: outcome is equal, not_equal, refused, unchecked or crashed."""
    refusal = ""
    for label, kwargs in attempts(shrink):
        try:
            try:
                patch = patch_size(name, kwargs)
            except Exception:  # timm rejects these options: try the next, smaller change
                continue
            size = (patches * patch[0], patches * patch[1])
            torch.manual_seed(0)
            model = dcal.create_model(name, 3, img_size=size, **kwargs).eval()
            x = torch.randn(2, 3, *size)
            with torch.no_grad():
                feature = model.forward_branches(x)["sa"]["feat"]
                vit = model.backbone
                reference = vit.forward_head(vit.forward_features(x), pre_logits=True)
            difference = (feature - reference).abs().max().item()
            if feature.shape == reference.shape and difference <= atol:
                return "equal", f"{difference:.1e}", label
            return "not_equal", f"largest difference {difference:.3g}", label
        except DCALError as error:
            refusal = str(error)
            if "timm cannot build" in refusal:  # the shrinking options, not DCAL: try the next
                continue
            return "refused", refusal, label
        except Exception as error:  # noqa: BLE001 - what the sweep is for
            return "crashed", f"{type(error).__name__}: {' '.join(str(error).split())[:200]}", label
    try:  # at its own size on the meta device (no memory): refused, or built but not checkable here
        with torch.device("meta"):
            dcal.create_model(name, 3)
        return "unchecked", "builds only at its own size, too large to run here", "own size (meta)"
    except DCALError as error:
        return "refused", str(error), "own size (meta)"
    except Exception as error:  # noqa: BLE001
        return "crashed", f"{type(error).__name__}: {' '.join(str(error).split())[:200]}", "own size (meta)"


def reason(message: str, name: str) -> str:
    """A refusal's message without the model's name and numbers, to count refusals by reason."""
    text = message.replace(repr(name), "<model>").replace(name, "<model>")
    return re.sub(r"\d+", "N", text)[:160]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shrink", default="depth=2,embed_dim=64,num_heads=2",
                        help="timm keyword arguments that make each model small (default depth=2,embed_dim=64,num_heads=2)")
    parser.add_argument("--patches", type=int, default=4, help="input size in patches per side (default 4)")
    parser.add_argument("--atol", type=float, default=1e-4, help="largest SA-feature difference counted as equal")
    parser.add_argument("--limit", type=int, default=0, help="only the first N names (0: all)")
    args = parser.parse_args()
    shrink = {key: int(value) for key, value in (item.split("=") for item in args.shrink.split(","))}
    torch.set_num_threads(1)
    names = sorted({name for pattern in PATTERNS for name in timm.list_models(pattern)})
    names = names[:args.limit] if args.limit else names
    started = time.perf_counter()
    outcomes, built_with, reasons = {}, Counter(), Counter()
    for name in names:
        outcome, detail, label = sweep_one(name, shrink, args.patches, args.atol)
        outcomes[name] = (outcome, detail)
        built_with[label] += outcome != "crashed"
        if outcome == "refused":
            reasons[reason(detail, name)] += 1
        print(f"{outcome:9s} {name}: {detail[:150]}", file=sys.stderr, flush=True)
    counts = Counter(outcome for outcome, _ in outcomes.values())
    print(json.dumps({
        "command": " ".join(["python benchmarks/timm_vit_sweep.py", *sys.argv[1:]]),
        "timm": timm.__version__, "torch": torch.__version__, "patterns": list(PATTERNS),
        "shrunk_with": shrink, "input_patches": args.patches, "models": len(names),
        "built_and_equal": counts["equal"], "refused": counts["refused"], "crashed": counts["crashed"],
        "built_not_equal": {n: d for n, (o, d) in outcomes.items() if o == "not_equal"},
        "crashes": {n: d for n, (o, d) in outcomes.items() if o == "crashed"},
        "built_with": dict(built_with), "refused_by_reason": dict(reasons.most_common()),
        "unchecked": sorted(n for n, (o, d) in outcomes.items() if o == "unchecked"),
        "seconds": round(time.perf_counter() - started, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
