"""Losses, the training loop, checkpoints and distributed set-up."""
