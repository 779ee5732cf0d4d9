"""Hot-spot kernels of vqi2i with a torch reference beside each.

`codebook_lookup`, `attention` and `decode_attention` are the only entry points; `dispatch.py`
chooses the Triton path for CUDA tensors and the torch path everywhere else
(`VQI2I_KERNELS=auto|torch|triton` forces one). `reference.py` holds the torch paths;
`triton_lookup.py` (fused distance + argmin), `triton_attention.py` (flash attention, forward and
backward) and `triton_decode.py` (flash-decoding over a KV cache) the kernels, which are imported
only when they run, so CPU-only users never import triton.
"""

from kernels.dispatch import attention, codebook_lookup, decode_attention

__all__ = ["attention", "codebook_lookup", "decode_attention"]
