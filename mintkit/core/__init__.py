"""What every paper shares: data pools, membership splits, training, extraction, metrics, plots, run records,
checkpoints, typed parameters and the shared pipeline stages."""
