"""Entry point: `python scripts/eval_fgvc.py --checkpoint runs/<name>/checkpoints/best.pt [--json]`.

A thin wrapper over `dcal eval` (see `dcal eval --help`).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dcal.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
