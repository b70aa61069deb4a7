"""What every paper shares: data pools, membership splits, training, metrics, plots, run records and typed
parameters. The bottom layer: it imports nothing else from mintkit (tests/test_imports.py)."""
