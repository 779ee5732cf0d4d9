"""What the Triton kernels share: interpreted or compiled, the dot helper, per-GPU config lists.

Importing this module imports triton, so only `dispatch.py` imports it, and only when the
Triton path was chosen. Whether the kernels run under the Triton interpreter (TRITON_INTERPRET=1,
CPU tensors) is fixed when they are defined, i.e. when this module is first imported.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl
from triton import knobs

INTERPRETED: bool = bool(knobs.runtime.interpret)

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_TL_DTYPES = {torch.float32: tl.float32, torch.float16: tl.float16, torch.bfloat16: tl.bfloat16}


def tl_dtype(dtype: torch.dtype):
    return _TL_DTYPES[dtype]


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 operands use three tf32 products (near-fp32 accuracy on tensor cores) so that the
    nearest code and the attention output agree with fp32 torch; fp16/bf16 ignore this."""
    return "tf32x3" if dtype == torch.float32 else "tf32"


def upcast_dot(dtype: torch.dtype) -> bool:
    """The Triton 3.8 interpreter multiplies bf16 operands as their raw uint16 bits; upcast them to
    fp32 there (exact: a bf16 x bf16 product fits in fp32). Compiled kernels use bf16 tensor cores."""
    return INTERPRETED and dtype == torch.bfloat16


@triton.jit
def dot(a, b, acc, UPCAST: tl.constexpr, PRECISION: tl.constexpr):
    """acc + a @ b with fp32 accumulation."""
    if UPCAST:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    return tl.dot(a, b, acc, input_precision=PRECISION)


def is_hopper(device: torch.device) -> bool:
    return device.type == "cuda" and torch.cuda.get_device_capability(device)[0] == 9


def device_guard(t: torch.Tensor):
    """Launch on the tensor's own GPU (Triton launches on the current device)."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


def check_runnable(t: torch.Tensor) -> None:
    """The compiled kernels need CUDA tensors; CPU tensors only work under the interpreter."""
    if not t.is_cuda and not INTERPRETED:
        raise RuntimeError(
            "the Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 set before the kernels are first imported"
        )
