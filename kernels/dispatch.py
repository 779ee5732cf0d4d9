"""One place that decides which implementation runs.

auto (default): the Triton kernels for CUDA tensors they support, the torch paths for everything
else. `VQI2I_KERNELS=torch` forces the torch paths; `VQI2I_KERNELS=triton` forces the kernels (on
CPU tensors that needs TRITON_INTERPRET=1 set before triton is first imported: the interpreter,
which is how the tests reach the kernels without a GPU). Triton is imported only when a kernel
is about to run, so CPU-only users never import it.
"""

from __future__ import annotations

import importlib.util
import os

import torch

from vqi2i.errors import UserError, did_you_mean

from .reference import attention_torch, codebook_lookup_torch, decode_attention_torch

MODES = ("auto", "torch", "triton")


def kernel_mode() -> str:
    """The VQI2I_KERNELS setting, checked."""
    mode = os.environ.get("VQI2I_KERNELS", "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise UserError(f"VQI2I_KERNELS={mode!r}: use auto, torch or triton{did_you_mean(mode, MODES)}")
    return mode


def triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def _use_triton(t: torch.Tensor, why_not) -> bool:
    """Whether this call runs the Triton kernel; `why_not()` names an input the kernel cannot take."""
    mode = kernel_mode()
    if mode == "torch":
        return False
    if mode == "auto":
        return t.is_cuda and triton_installed() and why_not() is None
    if not triton_installed():
        raise UserError("VQI2I_KERNELS=triton, but triton is not installed (pip install triton)")
    from . import triton_common  # optional: triton (imported only when a kernel is about to run)

    if not t.is_cuda and not triton_common.INTERPRETED:
        raise UserError(
            "VQI2I_KERNELS=triton with CPU tensors needs the Triton interpreter: "
            "set TRITON_INTERPRET=1 before starting (or use VQI2I_KERNELS=auto)"
        )
    why = why_not()
    if why is not None:
        raise ValueError(f"the Triton kernel cannot take these inputs: {why}")
    return True


def _lookup_why_not(z: torch.Tensor, codebook: torch.Tensor) -> str | None:
    if z.dim() != 2 or codebook.dim() != 2 or z.shape[1] != codebook.shape[1]:
        return f"need z [N, D] and codebook [K, D], got {tuple(z.shape)} and {tuple(codebook.shape)}"
    if z.dtype != codebook.dtype or z.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return f"z and codebook must share one dtype of fp32/fp16/bf16, got {z.dtype} and {codebook.dtype}"
    if z.device != codebook.device:
        return f"z is on {z.device}, the codebook on {codebook.device}"
    if codebook.shape[0] == 0 or codebook.shape[1] == 0:
        return "empty codebook"
    return None


@torch.no_grad()
def codebook_lookup(
    z: torch.Tensor, codebook: torch.Tensor, *, metric: str = "l2"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest code per row: z [N, D], codebook [K, D] -> (indices [N] int64, distances [N] fp32).

    l2 distances are squared euclidean, cosine distances 1 - cos; ties go to the lowest index, as
    torch.argmin. A search, not a loss: the results carry no gradient on either path.
    """
    if metric not in ("l2", "cosine"):
        raise ValueError(f"unknown metric {metric!r}; use 'l2' or 'cosine'")
    if _use_triton(z, lambda: _lookup_why_not(z, codebook)):
        from .triton_lookup import codebook_lookup_triton  # optional: triton

        return codebook_lookup_triton(z, codebook, metric=metric)
    return codebook_lookup_torch(z, codebook, metric=metric)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool = True) -> torch.Tensor:
    """Scaled dot-product attention over [B, H, T, Dh] (scale 1/sqrt(Dh)), differentiable.

    Causal masks are aligned to the end: with Tq < Tk (a chunk after cached keys) query i sees
    keys j <= i + Tk - Tq; causal needs Tq <= Tk.
    """
    if causal and q.dim() == 4 and k.dim() == 4 and q.shape[2] > k.shape[2]:
        raise ValueError(f"causal attention needs Tq <= Tk (masks align to the end), got {q.shape[2]} > {k.shape[2]}")

    def why_not():
        from .triton_attention import check_attention_inputs  # optional: triton

        return check_attention_inputs(q, k, v, causal)

    if _use_triton(q, why_not):
        from .triton_attention import attention_triton  # optional: triton

        return attention_triton(q, k, v, causal=causal)
    return attention_torch(q, k, v, causal=causal)


def decode_attention(
    q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """KV-cached decode step: q [B, H, Dh] against caches [B, H, Tmax, Dh] valid up to lengths [B] (>= 1)."""

    def why_not():
        from .triton_decode import check_decode_inputs  # optional: triton

        if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k_cache, v_cache)):
            return "the decode kernel has no backward (call it under torch.no_grad())"
        return check_decode_inputs(q, k_cache, v_cache, lengths)

    if _use_triton(q, why_not):
        from .triton_decode import decode_attention_triton  # optional: triton

        return decode_attention_triton(q, k_cache, v_cache, lengths)
    return decode_attention_torch(q, k_cache, v_cache, lengths)
