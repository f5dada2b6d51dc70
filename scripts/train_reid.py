"""Entry point: `python scripts/train_reid.py --config configs/reid/<dataset>.yaml [key=value ...]`.

A thin wrapper over `dcal train` (see `dcal train --help`); without `--config` it trains the
synthetic Re-ID demo (configs/demo/reid.yaml).
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcal.cli import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--config" or a.startswith("--config=") for a in argv) and "--resume" not in argv:
        argv = ["--config", str(REPO / "configs" / "demo" / "reid.yaml"), *argv]
    sys.exit(main(["train", *argv]))
