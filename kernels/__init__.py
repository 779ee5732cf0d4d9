"""Hot-spot kernels of vqi2i with a torch reference beside each, imported as `vqi2i_kernels`.

This folder installs under the project's own name `vqi2i_kernels` (pyproject.toml's package-dir), not as a
top-level `kernels`, a name another distribution on PyPI already uses; its files import each other
relatively, so they load under that name alone. From a checkout that is not installed, the repository's
`vqi2i_kernels.py` stands in for the installed package.

`codebook_lookup`, `attention` and `decode_attention` are the only entry points; `dispatch.py`
chooses the Triton path for CUDA tensors and the torch path everywhere else
(`VQI2I_KERNELS=auto|torch|triton` forces one). `reference.py` holds the torch paths;
`triton_lookup.py` (fused distance + argmin), `triton_attention.py` (flash attention, forward and
backward) and `triton_decode.py` (flash-decoding over a KV cache) the kernels, which are imported
only when they run, so CPU-only users never import triton.
"""

from .dispatch import attention, codebook_lookup, decode_attention

__all__ = ["attention", "codebook_lookup", "decode_attention"]
