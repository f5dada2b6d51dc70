"""Evaluation of a DCAL model on the test split(s), sharded over processes (PWCA is not used).

- FGVC (Sec. 4.1): top-1 and top-5 of the SA branch, of the GLCA branch, and of the combined class
  scores ``softmax(SA) + softmax(GLCA)``.  Keys: ``top1``/``top5`` (combined), ``top1_sa``,
  ``top5_sa``, ``top1_glca``, ``top5_glca`` (``None`` without GLCA), in percent.  Where the
  dataset has boxes (CUB-200-2011, Stanford Cars, the synthetic set), also the pointing game of the
  rollout maximum (:mod:`dcal.evaluation.pointing_game`): ``pointing_game``,
  ``pointing_game_chance`` (percent) and ``pointing_game_images``, from the same forward pass.
- Re-ID (Sec. 4.2): features are the model's inference output (L2-normalised concatenation of the
  SA and GLCA features); mAP, mINP and CMC from :func:`dcal.evaluation.reid_metrics`, computed on
  the model's device.  Keys: ``mAP``, ``mINP``, ``rank1``, ``rank5``, ``rank10``, in percent.  The
  same for each branch's feature alone (L2-normalised; the paper's supplementary compares SA and
  GLCA inference), under ``<key>_sa`` and ``<key>_glca`` (``None`` without GLCA).

``eval.flip`` adds each image's horizontal mirror (the paper tests on the single image, so it is
off by default): FGVC averages the two views' softmax scores per branch; Re-ID adds the two views'
features (per branch) before the L2 normalisation.

Re-ID metrics also carry ``gallery_exclusion``: ``"same_camera"`` (gallery items of the query's
identity and camera are left out) or, for data without camera ids, ``"query_image"`` (only the query
image itself; :mod:`dcal.evaluation.camera_filter`).  A dataset evaluated by gallery draws
(VehicleID, ``{"test": ds}``) gets the mean over the draws under the usual keys, the standard
deviation under ``<key>_std``, and ``gallery_draws`` (:mod:`dcal.evaluation.vehicleid_protocol`).

Each process evaluates its contiguous shard; results are gathered with the images' indices and
every index is checked to be present exactly once (``num_images``).
"""

from __future__ import annotations

import torch

from dcal.config import Config
from dcal.engine.data_setup import eval_loader
from dcal.engine.distributed import DistributedContext, all_gather_objects, broadcast_object
from dcal.evaluation.camera_filter import QUERY_IMAGE, exclusion_groups
from dcal.evaluation.classification import topk_accuracy
from dcal.evaluation.re_ranking import re_ranking_chunks
from dcal.evaluation.reid_metrics import reid_metrics, reid_metrics_from_distances
from dcal.evaluation.pointing_game import PointingGameResult, has_boxes, record_pointing
from dcal.evaluation.vehicleid_protocol import vehicleid_metrics
from dcal.model.inference import fgvc_scores, reid_features


@torch.no_grad()
def evaluate(model, datasets: dict, config: Config, context: DistributedContext = DistributedContext()) -> dict:
    """Metrics of ``model`` on ``datasets`` (``{"test": ds}`` for FGVC, ``{"query": q, "gallery": g}`` for Re-ID,
    ``{"test": ds}`` for Re-ID with gallery draws, as VehicleID)."""
    was_training = model.training
    model.eval()
    try:
        if config.task == "fgvc":
            (dataset,) = datasets.values()
            return _evaluate_fgvc(model, dataset, config, context)
        if "test" in datasets:
            return _evaluate_reid_draws(model, datasets["test"], config, context)
        return _evaluate_reid(model, datasets["query"], datasets["gallery"], config, context)
    finally:
        model.train(was_training)


def _evaluate_fgvc(model, dataset, config: Config, context: DistributedContext) -> dict:
    indices, combined, sa, glca, targets, hits, chance = [], [], [], [], [], [], []
    boxes = has_boxes(dataset)
    for batch in eval_loader(dataset, config, context.rank, context.world_size, pin_memory=context.device.type == "cuda"):
        images = batch["image"].to(context.device, non_blocking=True)
        out = model.forward_branches(images)
        indices.append(batch["index"])
        targets.append(batch["target"])
        scores, (sa_scores, glca_scores) = fgvc_scores(out), _branch_scores(out)
        if config.eval.flip:  # the mean of the image's and its mirror's class scores, per branch
            mirror = model.forward_branches(images.flip(3))
            sa_mirror, glca_mirror = _branch_scores(mirror)
            scores = (scores + fgvc_scores(mirror)) / 2
            sa_scores = (sa_scores + sa_mirror) / 2
            glca_scores = None if glca_scores is None else (glca_scores + glca_mirror) / 2
        combined.append(scores.cpu())
        sa.append(sa_scores.cpu())
        if glca_scores is not None:
            glca.append(glca_scores.cpu())
        if boxes:
            records = [dataset.records[i] for i in batch["index"].tolist()]
            batch_hits, batch_chance = record_pointing(out["rollout"].cpu(), model.grid_size, dataset.transform, records)
            hits.append(batch_hits)
            chance.append(batch_chance)
    columns = [targets, combined, sa, glca, hits, chance]
    index, (targets, combined, sa, glca, hits, chance) = _gather(indices, columns, len(dataset), context)
    metrics = {"num_images": len(index)}
    for name, scores in (("", combined), ("_sa", sa), ("_glca", glca)):
        accuracy = topk_accuracy(scores, targets) if len(scores) else {1: None, 5: None}
        metrics[f"top1{name}"], metrics[f"top5{name}"] = accuracy[1], accuracy[5]
    if boxes:
        metrics.update(PointingGameResult.from_arrays(hits, chance).as_dict())
    return metrics


#: The Re-ID features scored, by metric-key suffix: the inference concatenation and each branch alone.
REID_FEATURES = ("", "_sa", "_glca")
REID_METRICS = ("mAP", "mINP", "rank1", "rank5", "rank10")


def _evaluate_reid(model, query, gallery, config: Config, context: DistributedContext) -> dict:
    features = {name: _reid_features(model, dataset, config, context) for name, dataset in (("query", query), ("gallery", gallery))}
    metrics = None
    if context.is_main:
        metrics = _per_feature(lambda suffix: reid_scores(features["query"][suffix], features["gallery"][suffix],
                                                          query.records, gallery.records, config, device=context.device),
                               features["query"])
        metrics["num_images"] = len(query) + len(gallery)
    return broadcast_object(metrics, context)


def _per_feature(score, features: dict) -> dict:
    """``score(suffix)`` of the concatenated feature under the plain keys, and of each branch's feature
    under ``<key>_sa`` / ``<key>_glca`` (``None`` for a branch the model lacks; a model without GLCA has
    one feature, SA's, scored once)."""
    metrics = score("")
    for suffix in REID_FEATURES[1:]:
        if suffix not in features:
            branch = {}
        elif suffix == "_sa" and "_glca" not in features:
            branch = metrics  # the inference feature is SA's alone
        else:
            branch = score(suffix)
        metrics.update({f"{key}{suffix}": branch.get(key) for key in REID_METRICS})
    return metrics


def _branch_scores(out: dict):
    """softmax(SA logits) and softmax(GLCA logits) (None without GLCA) of ``forward_branches`` output."""
    glca = out["glca"]["logits"].float().softmax(1) if "glca" in out else None
    return out["sa"]["logits"].float().softmax(1), glca


def reid_branch_features(model, images: torch.Tensor, flip: bool = False) -> dict:
    """L2-normalised Re-ID features of ``images`` by :data:`REID_FEATURES` suffix: ``""`` the model's
    inference feature (the concatenation of SA and GLCA, as ``model(images)``), ``"_sa"`` and
    ``"_glca"`` each branch's alone (only the branches the model has).  With ``flip``, each is the
    sum of the (un-normalised) features of the image and its horizontal mirror, normalised."""
    views = [model.forward_branches(x) for x in ((images, images.flip(3)) if flip else (images,))]
    raw = {f"_{b}": sum(reid_features({b: view[b]}, model.neck_feat, normalize=False).float() for view in views)
           for b in ("sa", "glca") if b in views[0]}
    features = {"": torch.cat(list(raw.values()), dim=1), **raw}
    return {suffix: torch.nn.functional.normalize(f, dim=1) for suffix, f in features.items()}


def reid_scores(qf, gf, query_records, gallery_records, config: Config, device=None) -> dict:
    """mAP, mINP and CMC (percent) of query features against gallery features, computed on ``device``
    (default: the CPU)."""
    q_pids = torch.tensor([r.pid for r in query_records])
    g_pids = torch.tensor([r.pid for r in gallery_records])
    q_cams, g_cams, exclusion = exclusion_groups([r.camid for r in query_records], [r.camid for r in gallery_records],
                                                 [r.path for r in query_records], [r.path for r in gallery_records])
    if config.eval.re_ranking:
        result = reid_metrics_from_distances(re_ranking_chunks(qf, gf, device=device), q_pids, g_pids, q_cams, g_cams,
                                             device=device)
    else:
        result = reid_metrics(qf, gf, q_pids, g_pids, q_cams, g_cams, metric=config.eval.metric, device=device)
    cmc = result["cmc"]
    return {
        "mAP": 100.0 * float(result["mAP"]),
        "mINP": 100.0 * float(result["mINP"]),
        "rank1": 100.0 * float(cmc[0]),
        "rank5": 100.0 * float(cmc[min(4, len(cmc) - 1)]),
        "rank10": 100.0 * float(cmc[min(9, len(cmc) - 1)]),
        "gallery_exclusion": exclusion,
    }


def _reid_features(model, dataset, config: Config, context: DistributedContext) -> dict:
    """:func:`reid_branch_features` of every image of ``dataset``, in order, on every process."""
    indices, feats = [], {}
    for batch in eval_loader(dataset, config, context.rank, context.world_size, pin_memory=context.device.type == "cuda"):
        for suffix, f in reid_branch_features(model, batch["image"].to(context.device, non_blocking=True), config.eval.flip).items():
            feats.setdefault(suffix, []).append(f.cpu())
        indices.append(batch["index"])
    _, columns = _gather(indices, list(feats.values()), len(dataset), context)
    return dict(zip(feats, columns))


def _evaluate_reid_draws(model, test, config: Config, context: DistributedContext) -> dict:
    """VehicleID's protocol: the test split's features once, then galleries drawn from them."""
    features = _reid_features(model, test, config, context)
    metrics = None
    if context.is_main:
        metrics = _per_feature(lambda suffix: gallery_draw_scores(features[suffix], test.records, config,
                                                                  device=context.device), features)
        metrics["num_images"] = len(test)
    return broadcast_object(metrics, context)


def gallery_draw_scores(features, records, config: Config, device=None) -> dict:
    """Mean and standard deviation (``<key>_std``) of mAP, mINP and CMC (percent) over VehicleID's
    gallery draws from one test split (:mod:`dcal.evaluation.vehicleid_protocol`), computed on ``device``."""
    result = vehicleid_metrics(features, [r.pid for r in records], [r.path for r in records],
                               metric=config.eval.metric, re_ranking=config.eval.re_ranking, device=device)
    metrics = {}
    for key, mean, std in (("mAP", result["mAP"], result["mAP_std"]), ("mINP", result["mINP"], result["mINP_std"]),
                           *((f"rank{k}", result["cmc"][k - 1], result["cmc_std"][k - 1]) for k in (1, 5, 10))):
        metrics[key], metrics[f"{key}_std"] = 100.0 * float(mean), 100.0 * float(std)
    metrics["gallery_draws"] = result["num_draws"]
    metrics["gallery_exclusion"] = QUERY_IMAGE
    return metrics


def _gather(indices: list, columns: list, expected: int, context: DistributedContext):
    """Concatenate per-batch tensors over batches and ranks, ordered by image index; check each index appears once."""
    local = [torch.cat(c) if c else torch.empty(0) for c in columns]
    local_index = torch.cat(indices) if indices else torch.empty(0, dtype=torch.long)
    parts = all_gather_objects((local_index, local), context)
    index = torch.cat([p[0] for p in parts])
    merged = [torch.cat([p[1][i] for p in parts]) if any(len(p[1][i]) for p in parts) else torch.empty(0) for i in range(len(columns))]
    order = index.argsort()
    if len(index) != expected or not torch.equal(index[order], torch.arange(expected)):
        raise RuntimeError(f"evaluation saw {len(index)} images ({index.unique().numel()} distinct) of {expected}")
    return index[order], [m[order] if len(m) else m for m in merged]


def evaluate_extra(model, extra_sets: dict, config: Config, context: DistributedContext = DistributedContext()) -> dict:
    """:func:`evaluate` on each test set of ``eval.datasets`` (``{name: datasets}``, from
    :func:`dcal.engine.data_setup.extra_eval_data`), its keys prefixed ``<name>/`` (``dukemtmc/mAP``)."""
    return {f"{name}/{key}": value for name, sets in extra_sets.items()
            for key, value in evaluate(model, sets, config, context).items()}
