"""Static matplotlib figures (headless Agg); import the submodule you need: ``matches``, ``compare``."""
