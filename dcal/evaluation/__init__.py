"""Classification accuracy, Re-ID ranking metrics and re-ranking."""
