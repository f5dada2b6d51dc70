"""Restoring a training state that does not fit the run is one CheckpointError line."""

import pytest
import torch

from dcal.engine.train_state import restore_training_state
from dcal.errors import CheckpointError


def test_optimiser_state_of_another_layout_is_a_checkpoint_error():
    model, criterion = torch.nn.Linear(3, 2), torch.nn.Linear(1, 1)
    two_groups = torch.optim.SGD([{"params": [model.weight]}, {"params": [model.bias]}], lr=0.1)
    one_group = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(one_group, 1)
    state = {"model": model.state_dict(), "criterion": criterion.state_dict(), "optimizer": two_groups.state_dict(),
             "scheduler": scheduler.state_dict(), "scaler": torch.amp.GradScaler("cpu", enabled=False).state_dict()}
    with pytest.raises(CheckpointError, match="last.pt: its optimiser or loss state does not fit this run"):
        restore_training_state(state, "runs/x/checkpoints/last.pt", model=model, criterion=criterion, optimizer=one_group,
                               scheduler=scheduler, scaler=torch.amp.GradScaler("cpu", enabled=False))
