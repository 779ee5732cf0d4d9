"""Applications on trained checkpoints: translate, encode, info, generate, extend, complete, interpolate."""
