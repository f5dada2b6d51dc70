"""The datasets, samplers and loaders a :class:`~dcal.config.Config` describes, for training and evaluation.

- :func:`load_splits` parses ``data.dataset`` at ``data.root`` (writing the synthetic demo set
  into it first when ``data.synthetic`` is on and it is not there yet), checks that the
  dataset's task is the config's, and adds the validation split of ``data.val_split`` or
  ``data.val_fraction`` (:mod:`dcal.data.validation`; :func:`validation_sets` gives its datasets).
- :func:`build_eval_data` gives the test-time :class:`~dcal.data.image_dataset.ImageDataset` of a
  split (FGVC: ``test``; Re-ID: ``query`` and ``gallery``) — what ``dcal eval``, ``dcal predict``
  and the visualisations use.
- :func:`build_train_data` gives the training set, its sampler (P x K identities for Re-ID, a
  shuffle for FGVC) and the per-process micro-batch size.

Augmentation is deterministic per ``(seed, epoch, index)`` (:class:`SeededDataset`): each item
seeds torch's random generator from those three numbers, so a run resumed mid-epoch, with any number
of loader workers, sees exactly the crops and flips of an uninterrupted run.  The sampler hands the
workers ``(epoch, index)`` pairs, so one training loader with persistent workers serves every epoch;
on CUDA the loaders pin their batches for non-blocking copies.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from dcal.config import Config
from dcal.data.catalog import dataset_task, load_dataset
from dcal.data.layout import SYNTHETIC_MARKER
from dcal.data.image_dataset import CorruptImageWarning, ImageDataset, collate_skipping_corrupt
from dcal.data.records import DatasetSplits
from dcal.data.samplers import IdentitySampler, ShardedEvalSampler, ShuffleSampler
from dcal.data.synthetic import write_synthetic
from dcal.data.transforms import config_transform, eval_transform
from dcal.data.verify import drop_undecodable, require_images, undecodable
from dcal.engine.distributed import DistributedContext, broadcast_object
from dcal.engine.interrupts import ignore_stop_signals
from dcal.engine.seeding import mix_seed
from dcal.data.validation import validation_split_names, with_validation
from dcal.errors import ConfigError, DatasetError


def load_splits(config: Config) -> DatasetSplits:
    """The parsed dataset of ``config.data``; the synthetic demo set is written first if asked for."""
    d = config.data
    if dataset_task(d.dataset) != config.task:
        raise ConfigError(
            f"data.dataset={d.dataset!r} is a {dataset_task(d.dataset)} dataset but task={config.task!r}"
        )
    if d.synthetic:  # the writers return at once when root already holds a complete set
        if not any(Path(d.root).glob(f"*/{SYNTHETIC_MARKER}")):
            print(f"writing the synthetic {config.task} demo set to {d.root}", flush=True)
        write_synthetic(config.task, d.root, d.synthetic_options)
    splits = load_dataset(d.dataset, d.root, **d.options)
    train_split = d.train_split or splits.train_split
    _check_split(train_split, splits, "data.train_split")
    return with_validation(splits, train_split, d.val_split, d.val_fraction, config.train.seed)


def validation_sets(config: Config, splits: DatasetSplits) -> dict:
    """The validation datasets (``data.val_split`` / ``data.val_fraction``) keyed as
    :func:`dcal.engine.evaluator.evaluate` takes them — ``{"test": ...}`` or ``{"query": ..., "gallery": ...}`` —
    or ``{}`` without validation."""
    if config.data.val_split is None and config.data.val_fraction is None:
        return {}
    names = validation_split_names(config.task)
    keys = ("test",) if config.task == "fgvc" else ("query", "gallery")
    return {key: build_eval_data(config, name, splits) for key, name in zip(keys, names)}


def eval_split_names(config: Config, splits: DatasetSplits) -> tuple:
    """The splits evaluation reads: FGVC ``data.test_split`` (default ``test``); Re-ID query and gallery."""
    if config.task == "fgvc" and config.data.test_split is not None:
        _check_split(config.data.test_split, splits, "data.test_split")
        return (config.data.test_split,)
    return splits.eval_splits


def build_eval_data(config: Config, split: str, splits: DatasetSplits | None = None) -> ImageDataset:
    """The test-time dataset of ``split`` (test transform, records in file order)."""
    splits = splits if splits is not None else load_splits(config)
    _check_split(split, splits, "split")
    return ImageDataset(splits.splits[split], eval_transform(config), skip_corrupt=False)


def eval_datasets(config: Config, splits: DatasetSplits) -> dict:
    """The test-time datasets of the evaluation splits, ``{split: dataset}`` (FGVC ``test``; Re-ID
    ``query`` and ``gallery``), as :func:`dcal.engine.evaluator.evaluate` takes them."""
    return {name: build_eval_data(config, name, splits) for name in eval_split_names(config, splits)}


EXTRA_DATASET_KEYS = ("dataset", "root", "options", "name")


def extra_eval_data(config: Config, num_classes: int | None = None) -> dict:
    """The test sets of ``eval.datasets`` as ``{name: datasets}``, each ``datasets`` keyed as
    :func:`dcal.engine.evaluator.evaluate` takes them (``{"test": ...}`` or ``{"query": ..., "gallery": ...}``).

    Each entry is a mapping ``{dataset, root, options (optional), name (optional, default: the
    dataset)}``; the dataset must be of the config's task and, for FGVC, have ``num_classes``
    classes (the model's classifier is scored on it).  Nothing is written to ``root``.
    """
    sets = {}
    for position, entry in enumerate(config.eval.datasets):
        key = f"eval.datasets[{position}]"
        if not isinstance(entry, dict) or not {"dataset", "root"} <= set(entry) or set(entry) - set(EXTRA_DATASET_KEYS):
            raise ConfigError(f"{key}: expected a mapping with keys dataset and root (and optionally options, name), "
                              f"got {entry!r}")
        name = str(entry.get("name", entry["dataset"]))
        if name in sets:
            raise ConfigError(f"{key}: a second test set named {name!r}; give each entry its own name")
        if dataset_task(entry["dataset"]) != config.task:
            raise ConfigError(f"{key}: {entry['dataset']!r} is a {dataset_task(entry['dataset'])} dataset, "
                              f"but task={config.task!r}")
        extra = copy.deepcopy(config)
        extra.data.dataset, extra.data.root, extra.data.synthetic = entry["dataset"], str(entry["root"]), False
        extra.data.options = dict(entry.get("options") or {})
        extra.data.train_split = extra.data.test_split = extra.data.val_split = extra.data.val_fraction = None
        splits = load_dataset(extra.data.dataset, extra.data.root, **extra.data.options)
        if config.task == "fgvc" and num_classes is not None and splits.num_classes != num_classes:
            raise ConfigError(f"{key}: {entry['dataset']} at {entry['root']} has {splits.num_classes} classes, "
                              f"the model {num_classes}; an FGVC model can only be scored on its own classes")
        sets[name] = {split: build_eval_data(extra, split, splits) for split in splits.eval_splits}
    return sets


def eval_loader(dataset: Dataset, config: Config, rank: int = 0, world_size: int = 1, *,
                pin_memory: bool = False) -> DataLoader:
    """This rank's contiguous shard of ``dataset``, in order (each image is evaluated exactly once)."""
    return DataLoader(
        dataset,
        batch_size=config.eval.batch_size,
        sampler=ShardedEvalSampler(len(dataset), rank, world_size),
        num_workers=config.data.num_workers,
        pin_memory=pin_memory,
        worker_init_fn=ignore_stop_signals,  # Ctrl-C / SIGTERM are the training process's to handle
        generator=torch.Generator().manual_seed(0),  # else the loader draws from the global RNG, and
    )  # evaluating would change the training that follows


def drop_unreadable_eval_images(config: Config, splits, context: DistributedContext) -> dict:
    """With ``data.skip_corrupt``, remove the evaluation images that cannot be decoded (found once,
    by the main process) so every evaluation scores the same readable images; ``{split: paths}``."""
    if not config.data.skip_corrupt:
        return {}
    names = eval_split_names(config, splits)
    found = undecodable([r for name in names for r in splits.splits[name]]) if context.is_main else None
    found = broadcast_object(found, context)
    for reason in found.values():
        warnings.warn(f"skipping {reason}", CorruptImageWarning, stacklevel=2)
    return drop_undecodable(splits, names, set(found))


@dataclass
class EvaluationSets:
    """What a training run scores after an epoch: the test split(s), the validation split(s) (empty
    without ``data.val_split`` / ``data.val_fraction``), the ``eval.datasets`` and, under
    ``data.skip_corrupt``, the unreadable evaluation images left out, ``{split: paths}``."""

    test: dict
    validation: dict
    extra: dict
    skipped: dict


def evaluation_sets(config: Config, splits, context: DistributedContext = DistributedContext()) -> EvaluationSets:
    """The :class:`EvaluationSets` of ``config`` on the parsed ``splits``; an empty evaluation split
    is an error before any training."""
    skipped = drop_unreadable_eval_images(config, splits, context)  # data.skip_corrupt: counted, not scored
    require_images(splits, eval_split_names(config, splits))
    return EvaluationSets(eval_datasets(config, splits), validation_sets(config, splits),
                          extra_eval_data(config, splits.num_classes), skipped)



@dataclass
class TrainData:
    """The training set of one process: records, seeded dataset, sampler and micro-batch size."""

    splits: DatasetSplits
    dataset: "SeededDataset"
    sampler: torch.utils.data.Sampler
    micro_batch: int  # images per forward pass on this process
    _loader: DataLoader | None = None

    def loader(self, epoch: int, skip_batches: int, config: Config, rank: int, *, pin_memory: bool = False) -> DataLoader:
        """The loader of ``epoch`` on this rank, without its first ``skip_batches`` micro-batches.

        One loader serves every epoch (its workers persist); iterate it once per call.
        """
        self.dataset.epoch = epoch
        self.sampler.set_epoch(epoch, skip=skip_batches * self.micro_batch)
        if self._loader is None:
            workers = config.data.num_workers
            self._loader = DataLoader(
                self.dataset,
                batch_size=self.micro_batch,
                sampler=EpochIndexSampler(self.sampler),
                drop_last=True,
                num_workers=workers,
                collate_fn=collate_skipping_corrupt,
                generator=torch.Generator().manual_seed(mix_seed(config.train.seed, rank)),
                persistent_workers=workers > 0,
                pin_memory=pin_memory,
                worker_init_fn=ignore_stop_signals,  # Ctrl-C / SIGTERM: the training process checkpoints, then stops them
            )
        return self._loader

    def close(self) -> None:
        """Let go of the loader, so its worker processes (which persist across epochs) stop now."""
        self._loader = None

    def batches_per_epoch(self, epoch: int) -> int:
        self.sampler.set_epoch(epoch)
        return len(self.sampler) // self.micro_batch


def build_train_data(config: Config, rank: int = 0, world_size: int = 1, splits: DatasetSplits | None = None) -> TrainData:
    """Training set, sampler and micro-batch size (``data.batch_size / (world_size x train.accum_steps)``)."""
    splits = splits if splits is not None else load_splits(config)
    d, t = config.data, config.train
    if d.train_split is not None:
        _check_split(d.train_split, splits, "data.train_split")
    records = splits.splits[d.train_split or splits.train_split]
    parts = world_size * t.accum_steps
    if d.batch_size % parts:
        raise ConfigError(
            f"data.batch_size={d.batch_size} must be divisible by processes x train.accum_steps = "
            f"{world_size} x {t.accum_steps}"
        )
    micro_batch = d.batch_size // parts
    if not records:
        raise DatasetError(f"{splits.name} at {splits.root}: the training split is empty")
    if config.task == "reid":
        if micro_batch % d.num_instances:
            raise ConfigError(
                f"the per-process micro-batch {micro_batch} (data.batch_size / (processes x train.accum_steps)) "
                f"must be a multiple of data.num_instances={d.num_instances}"
            )
        sampler = IdentitySampler([r.pid for r in records], micro_batch, d.num_instances, t.seed, rank, world_size)
    else:
        sampler = ShuffleSampler(len(records), t.seed, rank, world_size, drop_last=True)
    transform = config_transform(config, train=True)
    dataset = SeededDataset(ImageDataset(records, transform, skip_corrupt=d.skip_corrupt), t.seed)
    if len(sampler) < micro_batch:
        raise ConfigError(
            f"{splits.name} at {splits.root}: {len(records)} training images give this process fewer "
            f"than one batch of {micro_batch}; lower data.batch_size"
        )
    return TrainData(splits, dataset, sampler, micro_batch)


class SeededDataset(Dataset):
    """Items of ``dataset`` whose random augmentation is a function of ``(seed, epoch, index)``.

    An item is asked for by ``(epoch, index)`` (what :class:`EpochIndexSampler` yields, so workers
    that persist across epochs need no copy of the epoch) or by ``index`` alone, in epoch
    :attr:`epoch`.  The caller's random state is left untouched (``torch.random.fork_rng``).
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix_seed(self.seed, epoch, index))
            return self.dataset[index]


class EpochIndexSampler(torch.utils.data.Sampler):
    """``(epoch, index)`` pairs of an epoch sampler's current epoch (see :class:`SeededDataset`)."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __iter__(self):
        epoch = self.sampler.epoch
        return ((epoch, index) for index in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def _check_split(split: str, splits: DatasetSplits, key: str) -> None:
    if split not in splits.splits:
        raise ConfigError(f"{key}={split!r}: {splits.name} has splits {', '.join(splits.splits)}")
