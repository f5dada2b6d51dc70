"""The paper's figures beside the measured ones (Zhu et al., CVPR 2022, Tables 1 and 2).

A dataset config's ``paper`` section records, for each backbone the paper reports on that dataset,
the baseline's and DCAL's test figures::

    paper:
      dataset: cub200            # the data.dataset they are for
      title: CUB-200-2011
      results:
        deit_tiny_patch16_224: {baseline: {top1: 82.1}, dcal: {top1: 84.6}}

A run matches a row when it trains that dataset on real images (``data.synthetic: false``), its
backbone's timm name without the weights tag (``deit_tiny_patch16_224.fb_in1k`` →
``deit_tiny_patch16_224``) is a key, and it is the baseline (no GLCA, no PWCA) or DCAL (GLCA with
rollout-selected local queries, and PWCA).  The figures are what the paper reports with its own
recipe; a run with another schedule is compared with them all the same, so the table says which
figure is the paper's.
"""

from __future__ import annotations

from dcal.config import Config, ModelConfig

#: the paper's metrics per task, in the order the tables print them
PAPER_METRICS = {"fgvc": ("top1",), "reid": ("mAP", "rank1")}
METRIC_NAMES = {"top1": "top-1", "mAP": "mAP", "rank1": "Rank-1"}


def paper_variant(model: ModelConfig) -> str | None:
    """``"baseline"``, ``"dcal"``, or None for a model the paper's main tables do not report."""
    if not model.glca and model.pwca_blocks == 0:
        return "baseline"
    if model.glca and model.pwca_blocks != 0 and (model.glca_selection, model.glca_readout) == ("rollout", "local"):
        return "dcal"
    return None


def backbone_key(backbone: str) -> str:
    """A timm model name without its pretrained tag: the key of ``paper.results``."""
    return backbone.split(".", 1)[0]


def paper_row(config: Config) -> dict | None:
    """``{"baseline": {...}, "dcal": {...}}`` of the paper for this run's dataset and backbone, or None."""
    paper = config.paper
    if config.data.synthetic or paper.dataset is None or paper.dataset != config.data.dataset:
        return None
    return paper.results.get(backbone_key(config.model.backbone))


def paper_reference(config: Config) -> dict | None:
    """The paper's figures for this very run (dataset, backbone and variant), or None::

        {"dataset": "CUB-200-2011", "backbone": "deit_tiny_patch16_224", "variant": "dcal", "top1": 84.6}
    """
    row, variant = paper_row(config), paper_variant(config.model)
    if row is None or variant not in row:
        return None
    return {"dataset": config.paper.title or config.paper.dataset, "backbone": backbone_key(config.model.backbone),
            "variant": variant, **row[variant]}


def format_reference(task: str, reference: dict | None) -> str:
    """``paper (dcal, deit_tiny_patch16_224, CUB-200-2011): top-1 84.6`` or, without a match, a line
    saying so."""
    if reference is None:
        return "paper: — (no figure of the paper for this dataset, backbone and variant)"
    values = "  ".join(f"{METRIC_NAMES[m]} {reference[m]:.1f}" for m in PAPER_METRICS[task] if m in reference)
    return f"paper ({reference['variant']}, {reference['backbone']}, {reference['dataset']}): {values}"
