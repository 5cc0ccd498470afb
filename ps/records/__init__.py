"""What a run leaves on disk: pushes.csv (one row per push), summary.json, final parameters,
checkpoints, and the resume of a run dir from its newest checkpoint."""
