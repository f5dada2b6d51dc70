"""What a configuration holds: its sections, their keys, types and defaults.

A :class:`Config` is a plain dataclass of sections (``model``, ``data``, ``optim``, ``train``,
``loss``, ``eval``, ``slurm``, ``paper``), in the spirit of nanoGPT's configuration: no global
state, no registry.  Its defaults are the synthetic FGVC demo that ``dcal train`` runs with no
arguments.  How a configuration is read, overridden and saved is :mod:`dcal.config`; what a value
may be, :mod:`dcal.config_checks`.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass
class ModelConfig:
    """The network: a timm ViT backbone with the DCAL branches (Sec. 3)."""

    backbone: str = "vit_tiny_patch16_224"  # any timm VisionTransformer name
    pretrained: Union[bool, str] = False  # True: timm's weights by name; a path: a local weights file
    glca: bool = True  # global-local cross-attention branch (Sec. 3.2)
    glca_ratio: Optional[float] = None  # R, share of patch tokens GLCA queries; None: the paper's 0.1 FGVC, 0.3 Re-ID
    glca_selection: str = "rollout"  # GLCA's queries: rollout (Sec. 3.2), last (last block's attention only), random
    glca_readout: str = "local"  # local: mean of GLCA's selected-token outputs; cls: class token (ignores the selection)
    pwca_blocks: Optional[int] = None  # T, the leading blocks with PWCA (Sec. 3.3); None: the paper's 12, capped at the depth; 0: off
    neck_feat: str = "before"  # Re-ID test feature: before or after the BNNecks (TransReID: before)
    grad_checkpointing: bool = False  # recompute each block in the backward pass (less memory, more time)
    init_from: Optional[str] = None  # a dcal checkpoint or .safetensors to start from (heads of another class count re-initialised)
    drop_path_rate: float = 0.1  # stochastic depth
    timm_kwargs: dict = field(  # passed to timm.create_model (e.g. a small ViT for the demo)
        default_factory=lambda: {"patch_size": 8, "embed_dim": 128, "depth": 4, "num_heads": 4}
    )


@dataclass
class DataConfig:
    """The dataset, its splits and the input pipeline."""

    dataset: str = "cub200"  # a name in dcal.data.catalog (the synthetic demos use the CUB and Market layouts)
    root: str = "data/demo-fgvc"  # the dataset's folder (`dcal demo-data` writes the synthetic ones)
    synthetic: bool = True  # write the synthetic demo set (of the task) to root first if it is not there
    synthetic_options: dict = field(default_factory=dict)  # passed to the synthetic writer (FGVC: train_per_class, test_per_class)
    options: dict = field(default_factory=dict)  # parser options of the dataset (e.g. MSMT17's val split)
    train_split: Optional[str] = None  # None: the dataset's own (train; trainval for FGVC-Aircraft)
    test_split: Optional[str] = None  # FGVC evaluation split; None: test (Re-ID evaluates query vs gallery)
    val_split: Optional[str] = None  # an official validation split (FGVC, e.g. aircraft's val): picks best.pt
    val_fraction: Optional[float] = None  # hold out this share of the training set to pick best.pt (Re-ID: of its identities)
    img_size: list = field(default_factory=lambda: [64, 64])  # network input, [height, width]
    mean: Optional[list] = None  # input normalisation mean; None: the backbone's (timm's pretrained config)
    std: Optional[list] = None  # input normalisation std; None: the backbone's
    interpolation: Optional[str] = None  # resize interpolation (bilinear, bicubic, ...); None: the backbone's
    resize_size: Optional[list] = field(default_factory=lambda: [64, 64])  # resize before cropping, [height, width]; None: the transform's default
    padding: int = 10  # Re-ID training: pad before the random crop
    erasing_prob: float = 0.5  # Re-ID training: random erasing probability
    batch_size: int = 32  # images per optimiser step over all processes and accumulation steps
    num_instances: int = 4  # Re-ID: images per identity in a batch (P x K sampling)
    num_workers: int = 0  # data-loader processes per training process (0: load in the training process)
    skip_corrupt: bool = False  # skip unreadable images instead of stopping


@dataclass
class OptimConfig:
    """The optimiser: AdamW for FGVC, SGD for Re-ID (paper Sec. 4)."""

    name: str = "adamw"  # any timm optimizer name (adamw, sgd, ...)
    lr: float = 1e-3
    lr_reference_batch: Optional[int] = None  # lr is scaled by batch_size / this; None: used as given
    weight_decay: float = 0.05
    momentum: float = 0.9  # SGD only


@dataclass
class TrainConfig:
    """The schedule and the training loop's switches."""

    epochs: int = 24
    warmup_epochs: float = 2.0
    warmup_lr: float = 1e-6
    min_lr: float = 1e-6
    accum_steps: int = 1  # gradient accumulation: micro-batches per optimiser step
    clip_grad: Optional[float] = None  # max gradient norm; None: no clipping
    amp: bool = False  # mixed precision: bfloat16 on the CPU, float16 with a GradScaler on CUDA
    ema: bool = False  # keep an exponential moving average of the weights (evaluated and saved as best)
    ema_decay: float = 0.9998
    seed: int = 0
    device: str = "auto"  # auto (CUDA if available), cpu, cuda
    threads: int = 1  # CPU threads per process (torch.set_num_threads); 0: torch's default
    eval_every: int = 4  # epochs between evaluations (the last epoch is always evaluated)
    checkpoint_every: int = 0  # also write checkpoints/last.pt every N optimiser steps; 0: per epoch only
    save_safetensors: bool = False  # also write the weights of last/best as .safetensors
    pwca_distractor: str = "random"  # PWCA's I2: random (any other image of the micro-batch) or other (another label only)
    sync_bn: bool = False  # Re-ID BNNecks as SyncBatchNorm under DDP on CUDA (NCCL)
    log_every: int = 10  # optimiser steps between loss/lr records in TensorBoard
    head_warmup_epochs: int = 0  # first epochs train only the heads and loss weights on the frozen network (LP-FT); 0: off
    compile: bool = False  # torch.compile the training step (model and loss), as timm's --torchcompile; checkpoints stay plain


@dataclass
class LossConfig:
    """The per-branch losses, combined with uncertainty weighting (Sec. 3.4)."""

    label_smoothing: float = 0.0
    weight_lr: Optional[float] = None  # learning rate of the uncertainty weights w_b (own group, no decay); None: the network's
    triplet_margin: Optional[float] = None  # Re-ID batch-hard triplet loss; None: soft margin log(1 + exp(d_ap - d_an)), as TransReID


@dataclass
class EvalConfig:
    """Evaluation settings."""

    batch_size: int = 64  # per process
    metric: str = "euclidean"  # Re-ID distance: euclidean or cosine
    re_ranking: bool = False  # Re-ID k-reciprocal re-ranking
    flip: bool = False  # test-time horizontal flip: FGVC mean of the scores, Re-ID sum of the features
    datasets: list = field(default_factory=list)  # more test sets of the task, each {dataset, root, options, name}; metrics under "<name>/" (name: the dataset)


@dataclass
class SlurmConfig:
    """One run's Slurm job (``--launcher slurm``, through submitit): one task per GPU, DDP over them."""

    partition: Optional[str] = None  # None: the cluster's default partition
    nodes: int = 1
    gpus_per_node: int = 1  # GPUs of the run on each node (one DDP process each); 0: one CPU task
    cpus_per_gpu: int = 8  # CPUs per process (data-loader workers + the training process)
    mem_gb: Optional[float] = None  # memory per node; None: the partition's default
    time_min: int = 1440  # the job's time limit; a timed-out run is requeued and resumes from last.pt
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None  # e.g. a GPU type: a100
    additional: dict = field(default_factory=dict)  # any other sbatch option, e.g. {exclude: node12}


@dataclass
class PaperConfig:
    """The paper's figures for this dataset (Tables 1 and 2), shown beside measured ones.

    ``results`` maps a timm backbone name (without the weights tag) to ``{baseline: {...}, dcal:
    {...}}`` of the paper's metrics (``top1``; ``mAP`` and ``rank1``); they apply to runs of
    ``dataset`` on real data (``data.synthetic: false``).
    """

    dataset: Optional[str] = None  # the data.dataset the figures are for
    title: Optional[str] = None  # the paper's name of the dataset (a table column)
    results: dict = field(default_factory=dict)


@dataclass
class Config:
    """A complete run: every section with its defaults (the synthetic FGVC demo)."""

    task: str = "fgvc"  # fgvc or reid
    name: str = "demo-fgvc"  # run name; the default output folder is runs/<name>
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def valid_keys(cls=Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (sections and their fields)."""
    keys = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        keys.append(key)
        if dataclasses.is_dataclass(field_types(cls)[f.name]):
            keys.extend(valid_keys(field_types(cls)[f.name], key + "."))
    return keys


def section_names() -> set:
    """The top-level keys that are sections (``model``, ``data``, ...), not settings (``task``, ``name``)."""
    return {f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(field_types(Config)[f.name])}


@functools.lru_cache(maxsize=None)
def field_types(cls) -> dict:
    """The resolved annotations of a section class (cached: resolving them is slow, and every key
    of every config read looks them up)."""
    return typing.get_type_hints(cls)
