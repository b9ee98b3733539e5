"""The training engine: optimisers and schedules, precision, checkpoints, the loop."""
