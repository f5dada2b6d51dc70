"""The training loader: one loader with persistent workers serves every epoch and gives, epoch by
epoch, exactly the batches of loading in the training process (the epoch travels with each index)."""

import torch

from dcal.config import load_config
from dcal.engine.data_setup import build_train_data
from tiny_datasets import write_tiny_fgvc


def _epochs(config, epochs=2):
    data = build_train_data(config)
    out, loaders = [], set()
    for epoch in range(epochs):
        loader = data.loader(epoch, 0, config, 0)
        loaders.add(id(loader))
        out.append([(b["index"], b["image"]) for b in loader])
    return out, loaders


def test_persistent_workers_see_each_epochs_augmentation(tmp_path):
    root = write_tiny_fgvc(tmp_path / "data", classes=2, train_per_class=8)
    args = ["data.dataset=image_folder", "data.synthetic=false", f"data.root={root}", "data.img_size=[16, 16]",
            "data.resize_size=[20, 20]", "data.batch_size=4"]
    in_process, _ = _epochs(load_config(None, args + ["data.num_workers=0"]))
    workers, loaders = _epochs(load_config(None, args + ["data.num_workers=1"]))
    assert len(loaders) == 1  # the same loader (and worker) for both epochs
    for epoch_a, epoch_b in zip(in_process, workers):
        assert len(epoch_a) == len(epoch_b) == 4
        for (index_a, image_a), (index_b, image_b) in zip(epoch_a, epoch_b):
            assert torch.equal(index_a, index_b) and torch.equal(image_a, image_b)
    # epoch 1 draws new crops and flips of the images epoch 0 saw
    first = {int(i): img for batch in in_process[0] for i, img in zip(*batch)}
    second = {int(i): img for batch in in_process[1] for i, img in zip(*batch)}
    assert any(not torch.equal(first[i], second[i]) for i in first)
