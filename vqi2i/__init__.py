"""vqi2i: vector-quantized image-to-image translation."""

__version__ = "0.1.0"
