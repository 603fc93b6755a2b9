"""Tasks that the CLI and the notebooks call (explore, evaluate, reproduce, benchmarks, demo)."""
