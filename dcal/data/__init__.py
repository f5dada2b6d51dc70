"""Datasets as distributed, synthetic datasets, samplers and transforms."""
