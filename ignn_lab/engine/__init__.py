"""Evaluation, inference (tiling, self-ensemble) and benchmarks on top of the models."""
