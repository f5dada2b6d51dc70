"""Shared pieces of the run-folder tests: a tiny FGVC run's arguments and a snapshot of a folder."""

import hashlib
from pathlib import Path

TINY_RUN = ["model.timm_kwargs={patch_size: 8, embed_dim: 16, depth: 1, num_heads: 1}", "model.pwca_blocks=1",
            "model.drop_path_rate=0.1", "data.dataset=image_folder", "data.synthetic=false", "data.num_workers=0",
            "data.img_size=[16, 16]", "data.resize_size=[20, 20]", "data.batch_size=8", "train.threads=1",
            "train.epochs=1", "train.warmup_epochs=0", "optim.lr=2e-3"]
STEPS_PER_EPOCH = 4  # write_tiny_fgvc(classes=4, train_per_class=8): 32 images, batches of 8


def snapshot(folder) -> dict:
    """``{relative path: (sha1, mtime_ns)}`` of every file under ``folder``."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): (hashlib.sha1(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def temporaries(folder) -> list:
    return sorted(str(p) for p in Path(folder).rglob(".*.tmp*"))
