"""Entry point: `python scripts/train_fgvc.py --config configs/fgvc/<dataset>.yaml [key=value ...]`.

A thin wrapper over `dcal train` (see `dcal train --help`); without `--config` it trains the
synthetic FGVC demo (configs/demo/fgvc.yaml).
"""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dcal.cli import main  # noqa: E402

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--config" or a.startswith("--config=") for a in argv) and "--resume" not in argv:
        argv = ["--config", str(REPO / "configs" / "demo" / "fgvc.yaml"), *argv]
    sys.exit(main(["train", *argv]))
