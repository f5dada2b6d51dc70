"""Figures: attention rollout and GLCA maps, Re-ID rank lists."""
