"""A command's options and its positional arguments (``key=value`` overrides, images) go in any
order, for every command that takes both."""

import pytest

from dcal.cli import parse_arguments

CASES = {
    "train": (["--config", "c.yaml", "--out", "runs/x", "--resume"], ["optim.lr=1e-4", "train.epochs=2"]),
    "eval": (["--checkpoint", "last.pt", "--json", "--ema", "no"], ["data.root=/data", "eval.flip=true"]),
    "extract": (["--checkpoint", "last.pt", "--split", "query", "--out", "f.npz"], ["data.root=/data"]),
    "ablate": (["--config", "c.yaml", "--out", "abl"], ["train.epochs=1", "optim.lr=1e-3"]),
    "predict": (["--checkpoint", "last.pt", "--topk", "3"], ["a.png", "b.png"]),
    "visualize": (["--checkpoint", "last.pt", "--out", "viz"], ["a.png", "folder"]),
}


@pytest.mark.parametrize("command", sorted(CASES))
def test_positionals_may_come_before_between_and_after_the_options(command):
    options, positionals = CASES[command]
    reference = parse_arguments([command, *positionals, *options])
    assert parse_arguments([command, *options, *positionals]) == reference
    mixed = [command, positionals[0], *options[:2], *positionals[1:], *options[2:]]
    assert parse_arguments(mixed) == reference
    assert positionals == (getattr(reference, "overrides", None) or reference.images)
