"""The DCAL model: timm backbone adapter, attention rollout, SA/GLCA/PWCA attention, heads (paper §3)."""
