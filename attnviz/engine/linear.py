"""Dense layers through oneDNN's matrix product instead of the BLAS library's.

PyTorch's CPU wheel sends a float32 ``F.linear`` to MKL's ``sgemm``; on AMD processors MKL does not use its
AVX-512 kernels, and oneDNN (shipped in the same wheel, used by PyTorch for reduced precision) multiplies the
same float32 matrices about twice as fast at every row count we use (benchmarks/README.md).  The arithmetic is
the same float32 (no bf16 or tf32 shortcut): only the order of the sums differs, so outputs agree with
``F.linear`` to float32 rounding.

:func:`use_onednn` swaps a model's ``nn.Linear`` modules for :class:`OneDnnLinear` in place: the same parameters
(tied weights stay tied), a different product.  :func:`linear` is the product for code that multiplies by a
weight itself (the output layer's scans in :mod:`attnviz.measure.metrics`).  Where oneDNN's operator is missing,
disagrees with ``F.linear`` on a check, or gradients are wanted, both fall back to ``F.linear``.
"""

from __future__ import annotations

import os
import platform
from functools import cache

import torch

__all__ = ["linear", "OneDnnLinear", "use_onednn", "onednn_available", "CACHED_SHAPES"]

CACHED_SHAPES = 64
"""Matrix shapes whose kernels oneDNN keeps, and whose descriptors ideep (PyTorch's wrapper of it) keeps.

Both keep 1,024 by default, about 0.3 MB a shape, and a server meets a new row count with nearly every text: the
memory soak's server grew by 400 MB.  A pass uses under ten shapes.  Set before the first product (the libraries
read these variables once); a deployer's own values win."""
for _variable in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
    os.environ.setdefault(_variable, str(CACHED_SHAPES))


@cache
def onednn_available() -> bool:
    """Whether oneDNN's float32 linear operator runs here and agrees with ``F.linear`` on a random product.

    Checked once per process: a private operator of PyTorch's, so a future wheel may rename or drop it.  Only on
    x86-64, where MKL is the alternative (as fast on Intel, half as fast on AMD); on ARM (Apple's processors
    among them) PyTorch's stock product uses the platform's own BLAS, and oneDNN was not measured there.
    """
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    op = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if op is None or not torch.backends.mkldnn.is_available():
        return False
    gen = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(*shape, generator=gen) for shape in ((5, 3, 64), (48, 64), (48,)))
    try:
        with torch.inference_mode():
            got = op(x, w, b, "none", [], "")
    except RuntimeError:
        return False
    return got.shape == (5, 3, 48) and torch.allclose(got, torch.nn.functional.linear(x, w, b), atol=1e-4, rtol=1e-4)


def _fits(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Float32 on the CPU, no gradient to record (the operator has no backward), and oneDNN at hand."""
    tensors = (x, weight) if bias is None else (x, weight, bias)
    if any(t.dtype != torch.float32 or t.device.type != "cpu" for t in tensors):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    return onednn_available()


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` as ``F.linear`` computes it: ``x`` ``(..., in)``, ``weight`` ``(out, in)`` (any
    strides), ``bias`` ``(out,)`` or None; returns ``(..., out)``.  Through oneDNN when it fits (see module)."""
    if x.numel() == 0 or not _fits(x, weight, bias):
        return torch.nn.functional.linear(x, weight, bias)
    return torch.ops.mkldnn._linear_pointwise(x.contiguous(), weight, bias, "none", [], "")


class OneDnnLinear(torch.nn.Linear):
    """``nn.Linear`` whose product is :func:`linear`: same parameters, same state dict, same outputs to rounding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def use_onednn(model: torch.nn.Module) -> int:
    """Make every plain ``nn.Linear`` of ``model`` an :class:`OneDnnLinear` (in place); returns how many.

    Changing the class keeps each module's parameters, hooks and place in the model: nothing is copied.
    Does nothing where oneDNN is not available.
    """
    if not onednn_available():
        return 0
    swapped = 0
    for module in model.modules():
        if type(module) is torch.nn.Linear:
            module.__class__ = OneDnnLinear
            swapped += 1
    return swapped
