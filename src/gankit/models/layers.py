"""Maxout and dropout, written for speed on the CPU (each was a large share of the paper D's step).

Maxout lays its pieces out as [pieces, units] so the max runs over whole contiguous rows, and its
backward is one mask; dropout draws four 16-bit random numbers per 64-bit draw of torch's generator
instead of one per element (torch's `bernoulli_` was 18% of the paper preset's step).
"""

from __future__ import annotations

import torch
from torch import nn


class _Maxout(torch.autograd.Function):
    """h = max over pieces of v = y.unflatten(dim, (pieces, units)); ties share the gradient equally, as
    `torch.amax` does."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, pieces: int, dim: int) -> torch.Tensor:
        v = y.unflatten(dim, (pieces, -1))
        h = v.amax(dim)
        ctx.save_for_backward(v, h)
        ctx.dim = dim
        return h

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        v, h = ctx.saved_tensors
        dim = ctx.dim
        winner = torch.eq(v, h.unsqueeze(dim)).to(g.dtype)  # 1 where a piece attains the max
        return winner.mul_((g / winner.sum(dim)).unsqueeze(dim)).flatten(dim, dim + 1), None, None


def maxout(y: torch.Tensor, pieces: int, dim: int = -1) -> torch.Tensor:
    """Max over `pieces` equal blocks of `dim`: block j holds piece j of every unit."""
    dim = dim % y.dim()
    if y.shape[dim] % pieces:
        raise ValueError(f"maxout: size {y.shape[dim]} of dim {dim} is not a multiple of {pieces} pieces")
    return _Maxout.apply(y, pieces, dim)


def keep_mask(shape: torch.Size, keep: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Bernoulli(keep) mask scaled by 1/keep. Each 64-bit draw gives four 16-bit uniforms u, kept when
    u < keep * 2^16, so P(keep) is exact to 2^-17 (exact for keep = 1/2)."""
    n = shape.numel()
    words = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    u = words.view(torch.int16)[:n].view(shape)
    threshold = round(keep * 65536) - 32768
    return (u < threshold).to(dtype).mul_(1.0 / keep)


class Dropout(nn.Module):
    """Inverted dropout: in training, zero each input with probability p and scale the rest by 1/(1-p)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * keep_mask(x.shape, 1.0 - self.p, x.dtype, x.device)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Packed(nn.Module):
    """PacGAN (Lin et al. 2018): D judges `pack` samples at once, concatenated, so a generator that repeats
    itself is easier to spot. In training a batch of m is judged as m / pack groups of consecutive samples;
    in eval mode (and for a batch that does not divide) every sample is judged packed with copies of itself."""

    def __init__(self, inner: nn.Module, pack: int):
        super().__init__()
        self.inner, self.pack = inner, pack

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or len(x) % self.pack:
            x = x.repeat_interleave(self.pack, 0)
        return self.inner(x.reshape(len(x) // self.pack, -1))


class MinibatchStd(nn.Module):
    """A minibatch standard-deviation feature (after Karras et al. 2018, here on D's input): the standard
    deviation of each input feature over the batch, averaged to one number, is appended to every sample
    (as one more value, or one more constant channel of `extra` pixels), so D can see a batch lacking variety."""

    def __init__(self, inner: nn.Module, extra: int = 1):
        super().__init__()
        self.inner, self.extra = inner, extra

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        s = x.float().std(0, unbiased=False).mean().to(x.dtype) if len(x) > 1 else x.new_zeros(())
        return self.inner(torch.cat([x, s.expand(len(x), self.extra)], 1), c)


def class_embedding(n_classes: int, dim: int) -> nn.Embedding:
    """A learned vector per class, for G's input (concatenated with z); N(0, 1) entries, like z's."""
    return nn.Embedding(n_classes, dim)


def one_hot(c: torch.Tensor, n_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Class labels c [N] as one-hot rows in `like`'s dtype, for concatenation with D's input."""
    return nn.functional.one_hot(c.long(), n_classes).to(like.dtype)


class Projection(nn.Module):
    """The class term of a projection discriminator (Miyato & Koyama 2018): <embed(c), phi(x)>, added to
    psi(phi(x)). The embedding starts like a linear layer's weights, U(-1/sqrt(f), 1/sqrt(f))."""

    def __init__(self, n_classes: int, features: int):
        super().__init__()
        self.embed = nn.Embedding(n_classes, features)
        nn.init.uniform_(self.embed.weight, -features ** -0.5, features ** -0.5)

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return (self.embed(c.long()).to(h.dtype) * h).sum(1)


def needs_c(c: torch.Tensor | None, name: str) -> torch.Tensor:
    """c, or a ValueError when a conditional network is called without class labels."""
    if c is None:
        raise ValueError(f"{name} is conditional: call it with class labels c")
    return c


def composite(out: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """An inpainting G's output, composited: the context's visible pixels kept exactly, G's own in the hidden ones
    (c [N, 2 d] = [x with hidden pixels zeroed, 1 where visible], see `gankit.inpaint.context`). Composited so that
    a completion agrees with the given pixels by construction: G spends nothing on copying them, and D judges only
    whether the hidden part fits the visible one (the hidden pixels alone get G's gradient)."""
    d = out.shape[1]
    return torch.where(c[:, d:] > 0.5, c[:, :d].to(out.dtype), out)
