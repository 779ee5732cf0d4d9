"""Training: the stage-1 translator trainer and the shared run utilities."""
