"""The dataset names dcal knows, in configs and on the command line, and :func:`load_dataset`.

=================  ======  ==============================================================  ===========================
name               task    layout (see each module's docstring)                            options
=================  ======  ==============================================================  ===========================
``cub200``         fgvc    CUB-200-2011 (also the synthetic FGVC demo)                     —
``stanford_cars``  fgvc    devkit layout or ``car_ims/`` + ``cars_annos.mat``              —
``aircraft``       fgvc    FGVC-Aircraft ``data/``                                         ``level``, ``train_split``
``nabirds``        fgvc    NABirds (``images/``, ``images.txt``, ...)                      —
``stanford_dogs``  fgvc    Stanford Dogs ``Images/``, ``Annotation/``, ``*_list.mat``      —
``image_folder``   fgvc    ``train|val|test/<class>/<image>``                              —
``market1501``     reid    Market-1501 (also the synthetic Re-ID demo)                     —
``dukemtmc``       reid    DukeMTMC-reID                                                   —
``msmt17``         reid    MSMT17 V1 or V2                                                 ``include_val``
``veri776``        reid    VeRi-776                                                        —
``vehicleid``      reid    VehicleID ``image/``, ``train_test_split/`` (no cameras)        ``test_size``
``cuhk03``         reid    CUHK03-NP ``detected/``, ``labeled/``                           ``variant``
``reid_list``      reid    ``train.txt``, ``query.txt``, ``gallery.txt`` (camid optional)  —
``reid_folder``    reid    ``train|query|gallery/<identity>/<image>`` (no cameras)         —
=================  ======  ==============================================================  ===========================
"""

from __future__ import annotations

import importlib
import inspect

from dcal.data.records import DatasetSplits
from dcal.errors import DatasetError

#: Every dataset name and its task; the parser of ``name`` is the module ``dcal.data.<name>``.
DATASETS = {
    "cub200": "fgvc",
    "stanford_cars": "fgvc",
    "aircraft": "fgvc",
    "nabirds": "fgvc",
    "stanford_dogs": "fgvc",
    "image_folder": "fgvc",
    "market1501": "reid",
    "dukemtmc": "reid",
    "msmt17": "reid",
    "veri776": "reid",
    "vehicleid": "reid",
    "cuhk03": "reid",
    "reid_list": "reid",
    "reid_folder": "reid",
}


def dataset_task(name: str) -> str:
    """``"fgvc"`` or ``"reid"`` for a dataset name."""
    _check_name(name)
    return DATASETS[name]


def dataset_options(name: str) -> dict:
    """The options ``name`` accepts, with their defaults."""
    _check_name(name)
    parameters = inspect.signature(_loader(name)).parameters
    return {key: p.default for key, p in parameters.items() if key != "root"}


def load_dataset(name: str, root, **options) -> DatasetSplits:
    """Parse the dataset ``name`` found at ``root`` into named records per split.

    Raises :class:`~dcal.errors.DatasetError` for an unknown name or option (naming the valid ones),
    a missing file or folder (naming it and the expected layout) or a malformed annotation; issues a
    :class:`~dcal.data.layout.SplitSizeWarning` per split whose size differs from the official one.
    """
    valid = dataset_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        choices = ", ".join(f"{key} (default {value!r})" for key, value in valid.items()) or "none"
        raise DatasetError(f"dataset {name}: unknown option(s) {', '.join(unknown)}; valid options: {choices}")
    return _loader(name)(root, **options)


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset '{name}'; valid names: {', '.join(DATASETS)}")


def _loader(name: str):
    return importlib.import_module(f"dcal.data.{name}").load
