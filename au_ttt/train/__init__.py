"""Training: loop, checkpoints, GPU-slot allocation and run tracking."""
