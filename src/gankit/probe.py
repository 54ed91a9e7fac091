"""Semi-supervised learning with D's features (Goodfellow et al. 2014, section 7, item 4): a linear probe on
D's penultimate features (the input of its last Linear layer, D in eval mode) fitted on N labelled training
images balanced over classes, against the same linear classifier on raw pixels and a network of D's
architecture (a K-way head in place of its logit) trained from scratch on the same N labels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gankit.errors import UsageError
from gankit.gan import GAN, eval_mode
from gankit.models import construct

METHODS = ("D features", "raw pixels", "D from scratch")


def last_linear(net: nn.Module) -> tuple[nn.Module, str, nn.Linear]:
    """(parent, attribute name, layer) of the last nn.Linear in `net`'s module order: D's logit layer."""
    name = None
    for qualified, m in net.named_modules():  # pre-order: the last Linear visited is the last one applied
        if isinstance(m, nn.Linear):
            name = qualified
    if name is None:
        raise UsageError("this run's discriminator has no Linear layer to take features from")
    *path, attr = name.split(".")
    parent = net.get_submodule(".".join(path)) if path else net
    return parent, attr, getattr(parent, attr)


@torch.no_grad()
def d_features(gan: GAN, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """D's penultimate features: the input of its last Linear layer, D in eval mode (no dropout)."""
    _, _, layer = last_linear(gan.D)
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda m, inp: seen.append(inp[0].detach().float().cpu()))
    try:
        with eval_mode(gan.D):
            for i in range(0, len(x), batch):
                xi = x[i:i + batch].to(gan.device).float()
                gan.D(xi) if gan.E is None else gan.D(xi, gan.encode(xi))  # a BiGAN's D reads (x, E(x))
    finally:
        handle.remove()
    return torch.cat(seen).flatten(1)


def fit_logistic(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = 1e-2, max_iter: int = 200):
    """Multinomial logistic regression on standardised features with an L2 penalty (l2/2 ||W||^2 on the mean
    cross-entropy), by L-BFGS; returns predict(x) -> labels."""
    x = x.double()
    mu, sd = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    xs = (x - mu) / sd
    W = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xs @ W + b, y) + 0.5 * l2 * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    W, b = W.detach(), b.detach()
    return lambda t: (((t.double() - mu) / sd) @ W + b).argmax(1)


def balanced_indices(labels: torch.Tensor, n: int, n_classes: int, seed: int) -> torch.Tensor:
    """n indices drawn without replacement, n // K per class (the remainder to the first classes)."""
    if n < n_classes:
        raise UsageError(f"--labels {n}: need at least one labelled image per class ({n_classes} classes)")
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(n_classes):
        idx = torch.nonzero(labels == k).flatten()
        want = n // n_classes + (k < n % n_classes)
        if len(idx) < want:
            raise UsageError(f"--labels {n}: class {k} has only {len(idx)} training images")
        out.append(idx[torch.randperm(len(idx), generator=g)[:want]])
    return torch.cat(out)


class SelfPacked(nn.Module):
    """A packed D's inner network judging each sample packed with copies of itself (Packed's eval behaviour, in
    training too), so a classifier gives one prediction per image."""

    def __init__(self, inner: nn.Module, pack: int):
        super().__init__()
        self.inner, self.pack = inner, pack

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(x.repeat_interleave(self.pack, 0).reshape(len(x), -1))


def scratch_network(gan: GAN, n_classes: int, seed: int) -> nn.Module:
    """D's architecture, freshly initialised (seeded), its last Linear replaced by a K-way head."""
    from gankit.models.layers import Packed

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, net = construct(gan.arch)
        parent, name, layer = last_linear(net)
        setattr(parent, name, nn.Linear(layer.in_features, n_classes))
    if isinstance(net, Packed):
        net = SelfPacked(net.inner, net.pack)
    return net.to(gan.device)


def train_scratch(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 300, batch: int = 64,
                  lr: float = 1e-3, seed: int = 0, device="cpu") -> nn.Module:
    """Adam on the cross-entropy over minibatches of the labelled images (train mode: D's dropout on)."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    net.train()
    for _ in range(steps):
        i = torch.randint(0, len(x), (min(batch, len(x)),), generator=g)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
            loss = F.cross_entropy(net(x[i].to(device)).reshape(len(i), -1), y[i].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
        opt.step()
    return net


@torch.no_grad()
def _predict_net(net: nn.Module, x: torch.Tensor, device, batch: int = 1000) -> torch.Tensor:
    with eval_mode(net):
        return torch.cat([net(x[i:i + batch].to(device)).reshape(len(x[i:i + batch]), -1).argmax(1).cpu()
                          for i in range(0, len(x), batch)])


def probe(gan: GAN, n_labels: int, seeds: int = 3, test: tuple[torch.Tensor, torch.Tensor] | None = None,
          l2: float = 1e-2, scratch_steps: int = 300, methods: tuple[str, ...] = METHODS, log=None) -> dict:
    """Test accuracy of each method for `seeds` draws of the labelled set: {method: {"mean", "std", "runs"}}."""
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise UsageError(f"unknown probe method(s) {sorted(unknown)} (choose from {', '.join(METHODS)})")
    if gan.spec.kind != "image":
        raise UsageError("probe needs an image run (a labelled test split); this run's dataset is a toy")
    data = gan.data
    if data.labels is None:
        raise UsageError(f"dataset {gan.cfg.dataset} has no labels to probe with")
    if seeds < 1:
        raise UsageError("--seeds must be >= 1")
    K = int(data.labels.max()) + 1
    if test is None:
        from gankit.data import load_dataset

        c = gan.cfg
        t = load_dataset(c.dataset, "test", c.data_dir, None, c.pixel_range, image_size=c.image_size)
        test = (t.x, t.labels)
    xt, yt = test
    feats_test = d_features(gan, xt) if "D features" in methods else None
    runs: dict[str, list[float]] = {m: [] for m in methods}
    for s in range(seeds):
        idx = balanced_indices(data.labels, n_labels, K, seed=s)
        x, y = data.x[idx], data.labels[idx]
        for m in methods:
            if m == "D features":
                pred = fit_logistic(d_features(gan, x), y, K, l2)(feats_test)
            elif m == "raw pixels":
                pred = fit_logistic(x, y, K, l2)(xt)
            else:
                net = train_scratch(scratch_network(gan, K, s), x, y, scratch_steps, seed=s, device=gan.device)
                pred = _predict_net(net, xt, gan.device)
            runs[m].append(float((pred == yt).double().mean()))
            if log is not None:
                log(f"seed {s}: {m}: test accuracy {runs[m][-1]:.2%}")
    return {m: {"mean": float(np.mean(r)), "std": float(np.std(r, ddof=1)) if len(r) > 1 else math.nan, "runs": r}
            for m, r in runs.items()} | {"n_labels": n_labels, "seeds": seeds, "n_test": len(xt)}
