"""Mixed precision by working copies: the model's fp32 weights stay the masters that the optimiser,
the weight average, checkpoints and sampling use; the training passes run on a bf16 copy.

Autocast re-casts every weight at every forward (twice per network per Algorithm-1 iteration); a
working copy is cast once, after its network's update. Normalisation layers stay fp32 and are shared
with the master (torch's kernels take bf16 inputs with fp32 statistics). In fp32 the working copy
is the model itself and every method here does nothing, so one training loop serves both.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# kept fp32, shared with the master (so is any module with a true `normalises` attribute: gankit's stacked BatchNorms)
_SHARED = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


class _FP32SpectralNorm(_SpectralNorm):
    """Spectral normalisation of a bf16 working weight W: the power iteration and sigma in fp32, on the master's
    u and v (shared buffers, so the iteration carries on across refreshes), then W / sigma back in bf16."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return super().forward(weight.float()).to(weight.dtype)


class Working:
    """The module the training passes run on, tied to its fp32 master."""

    def __init__(self, master: nn.Module, dtype: torch.dtype):
        self.master, self.dtype = master, dtype
        self.pairs: list[tuple[nn.Parameter, nn.Parameter]] = []  # (master, working) where they differ
        if dtype == torch.float32:
            self.module = master
            return
        self.module = copy.deepcopy(master)
        copies: dict[int, nn.Parameter] = {}  # one working copy per master, even where a weight is shared
        for work, mast in zip(self.module.modules(), master.modules(), strict=True):
            work._buffers = mast._buffers  # running statistics accumulate in the master
            if isinstance(work, _SpectralNorm):
                work.__class__ = _FP32SpectralNorm
            if isinstance(mast, _SHARED) or getattr(mast, "normalises", False):
                work._parameters = mast._parameters
                continue
            for name, p in mast._parameters.items():
                if p is not None:
                    if id(p) not in copies:
                        copies[id(p)] = nn.Parameter(p.detach().to(dtype), requires_grad=p.requires_grad)
                        self.pairs.append((p, copies[id(p)]))
                    work._parameters[name] = copies[id(p)]

    def __call__(self, *args):
        return self.module(*args)

    def input(self, x: torch.Tensor) -> torch.Tensor:
        """x in the working precision."""
        return x.to(self.dtype)

    def zero_grad(self) -> None:
        self.module.zero_grad(set_to_none=True)

    def step(self, opt: torch.optim.Optimizer) -> None:
        """Hand the working gradients to the masters (in fp32), update them, refresh the copy."""
        if self.pairs:
            self._grads_to_masters()
        opt.step()
        self.refresh()

    def _grads_to_masters(self) -> None:
        if all(p.grad is not None and w.grad is not None for p, w in self.pairs):  # reuse the fp32 buffers
            torch._foreach_copy_([p.grad for p, _ in self.pairs], [w.grad for _, w in self.pairs])
        else:
            for p, w in self.pairs:
                p.grad = None if w.grad is None else w.grad.to(p.dtype)

    @torch.no_grad()
    def refresh(self) -> None:
        """Copy the masters' current values into the working weights (after an update or a load)."""
        if self.pairs:
            torch._foreach_copy_([w for _, w in self.pairs], [p for p, _ in self.pairs])
