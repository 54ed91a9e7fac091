"""Generator and discriminator architectures, and the `MODELS` registry that picks them from a config.

A model entry turns (config, data) into an *architecture*: each network's class name and constructor
arguments (the output bias taken from the data included). Checkpoints store the architecture, so G and
D are rebuilt from a checkpoint alone, without the training data. Every network is a plain nn.Module
called as G(z, c=None) and D(x, c=None) (c: a class label, unused by unconditional nets; for an inpainting run,
the context of an image, its visible pixels and where they are: `gankit.inpaint.context`).
"""

from __future__ import annotations

import torch
from torch import nn

from gankit.errors import CheckpointError, ConfigError
from gankit.models.layers import MinibatchStd, Packed
from gankit.models.conv import DCGANDiscriminator, DCGANGenerator, sizes as dcgan_sizes
from gankit.models.mlp import (BNMLPGenerator, JointDiscriminator, MLPDiscriminator, MLPEncoder, MLPGenerator,
                               TutorialDiscriminator)
from gankit.models.semi import SemiDiscriminator, SemiGenerator
from gankit.models.paper import (PaperConvDiscriminator, PaperConvGenerator, PaperDiscriminator, PaperGenerator,
                                 output_bias_from_mean)
from gankit.registry import Entry

__all__ = ["MLPGenerator", "MLPDiscriminator", "PaperGenerator", "PaperDiscriminator", "DCGANGenerator",
           "DCGANDiscriminator", "MODELS", "architecture", "construct", "build_models"]

# the classes a checkpoint may name (nothing else is ever constructed from a file)
NETWORKS = {cls.__name__: cls for cls in (MLPGenerator, MLPDiscriminator, BNMLPGenerator, TutorialDiscriminator,
                                          DCGANGenerator, DCGANDiscriminator, PaperGenerator, PaperDiscriminator,
                                          PaperConvGenerator, PaperConvDiscriminator, JointDiscriminator, MLPEncoder,
                                          SemiGenerator, SemiDiscriminator)}


def _output_for(data) -> str:
    if data.kind != "image":
        return "linear"
    return "sigmoid" if data.value_range == (0.0, 1.0) else "tanh"


def _net(cls, **kwargs) -> dict:
    return {"class": cls.__name__, "kwargs": kwargs}


def _mlp(cfg, data):
    return (_net(MLPGenerator, z_dim=cfg.z_dim, x_dim=data.dim, hidden=cfg.hidden, layers=cfg.layers,
                 output=_output_for(data)),
            _net(MLPDiscriminator, x_dim=data.dim, hidden=cfg.hidden, layers=cfg.layers))


def _bn_mlp(cfg, data):
    return (_net(BNMLPGenerator, z_dim=cfg.z_dim, x_dim=data.dim, output=_output_for(data)),
            _net(TutorialDiscriminator, x_dim=data.dim))


def _dcgan(cfg, data):
    g, d = dcgan_sizes(cfg.hidden)
    return (_net(DCGANGenerator, z_dim=cfg.z_dim, shape=tuple(data.shape), width=cfg.hidden, output=_output_for(data),
                 **g),
            _net(DCGANDiscriminator, shape=tuple(data.shape), width=cfg.hidden, **d))


# G's output bias for the paper nets (`output_bias`): the inverse of the output nonlinearity at each pixel's training
# mean, the mean kept eps away from the ends of the range (gankit's 1e-3, or the released code's 1e-7 from pylearn2's
# init_sigmoid_bias_from_marginals: pixels never lit start at logit -16 instead of -6.9), or zero.
OUTPUT_BIAS_EPS = {"mean": 1e-3, "code": 1e-7}
OUTPUT_BIAS_MODELS = ("paper", "paper-conv")


def _output_bias(cfg, mean: torch.Tensor, output: str) -> torch.Tensor:
    kind = getattr(cfg, "output_bias", "mean")
    return torch.zeros_like(mean) if kind == "zero" else output_bias_from_mean(mean, output, OUTPUT_BIAS_EPS[kind])


def _paper(cfg, data):
    output = _output_for(data)
    bias = _output_bias(cfg, data.x.mean(0), output)
    return (_net(PaperGenerator, z_dim=cfg.z_dim, x_dim=data.dim, output_bias=bias, output=output),
            _net(PaperDiscriminator, x_dim=data.dim))


def _paper_conv(cfg, data):
    output = _output_for(data)
    bias = _output_bias(cfg, data.images(data.x[:10_000]).mean(0).reshape(-1), "sigmoid")
    return (_net(PaperConvGenerator, z_dim=cfg.z_dim, shape=tuple(data.shape),
                 output_bias=bias if output == "sigmoid" else None, output=output),
            _net(PaperConvDiscriminator, shape=tuple(data.shape)))


def _semi_mlp(cfg, data):
    return (_net(SemiGenerator, z_dim=cfg.z_dim, x_dim=data.dim, output=_output_for(data)),
            _net(SemiDiscriminator, x_dim=data.dim, n_classes=n_classes_of(data, "model 'semi-mlp'")))


MODELS: dict[str, Entry] = {
    "mlp": Entry(_mlp, "MLPs of --layers x --hidden (ReLU G, LeakyReLU D); the toy default"),
    "bn-mlp": Entry(_bn_mlp, "the common tutorial MLP (BatchNorm G 128-256-512-1024, D 512-256); the image default",
                    ("image",)),
    "dcgan": Entry(_dcgan, "DCGAN-style conv nets, width --hidden", ("image",)),
    "paper": Entry(_paper, "the paper's MNIST nets (ReLU G 1200-1200, maxout D 240x5 with dropout)", ("image",)),
    "paper-conv": Entry(_paper_conv, "the paper's CIFAR-10 nets (maxout-conv D, deconvolutional G)", ("image",)),
    "semi-mlp": Entry(_semi_mlp, "Salimans et al. (2016) MNIST nets for semi-supervised learning: K-class D "
                                 "1000-500-250-250-250 (weight norm, Gaussian noise), G 500-500 softplus + batch norm",
                      ("image", "toy")),
}
# models whose D is a K-class classifier (`classify(x)` -> class logits, features): the semi-supervised objective's
CLASSIFIERS = ("semi-mlp",)


# models that take an image context (--inpaint): G(z, c) and D(x, c) with c = [visible pixels, mask]
INPAINT_MODELS = ("mlp", "bn-mlp", "dcgan")

# BiGAN / ALI (--encoder): per model, E's and the joint D's (hidden, layers, z_hidden) -- D's own sizes where it
# has them (the toy MLP: plain concatenation of x and z), the tutorial D's 512-wide layers for bn-mlp
ENCODER_MODELS = {"mlp": lambda cfg: (cfg.hidden, cfg.layers, 0), "bn-mlp": lambda cfg: (512, 2, 256)}


def _with_encoder(cfg, data, arch: dict) -> dict:
    """The architecture of a BiGAN: E: x -> z (an MLP) and D(x, z) on pairs in place of D(x)."""
    hidden, layers, z_hidden = ENCODER_MODELS[cfg.model](cfg)
    if data.kind == "image" and cfg.model == "mlp":
        z_hidden = hidden
    D = _net(JointDiscriminator, x_dim=data.dim, z_dim=cfg.z_dim, hidden=hidden, layers=layers, z_hidden=z_hidden)
    return {**arch, "D": {**D, **({"spectral_norm": True} if cfg.spectral_norm else {})},
            "E": _net(MLPEncoder, x_dim=data.dim, z_dim=cfg.z_dim, hidden=max(hidden, 256), layers=max(layers, 3))}


def n_classes_of(data, who: str = "config key 'conditional'") -> int:
    """The number of classes a conditional (or classifying) model is given: the dataset's, when it has labels of
    two or more."""
    if data.labels is None:
        raise ConfigError(f"{who}: dataset '{data.name}' has no class labels (a folder: dataset "
                          f"needs one sub-directory per class)")
    k = max(len(data.classes), int(data.labels.max()) + 1 if len(data.labels) else 0)
    if k < 2:
        raise ConfigError(f"{who}: dataset '{data.name}' has a single class; nothing to "
                          f"{'condition on' if 'conditional' in who else 'classify'}")
    return k


def class_dim(n_classes: int) -> int:
    """Length of G's learned class embedding: one number per class, at most 50."""
    return min(n_classes, 50)


def architecture(cfg, data) -> dict:
    """{"G": {"class", "kwargs"}, "D": {...}} for `cfg.model` on `data` (a Data: some nets read its mean).
    D records the stabilisers that change its structure: packing (its input widened `pack` times) and
    spectral normalisation. A conditional model records its number of classes in both nets' kwargs (and the
    length of G's class embedding), so a checkpoint rebuilds it without the data; an inpainting one (--inpaint)
    records the length of its image context, 2 x the image's values (the pixels, then the visible-pixel mask)."""
    G, D = MODELS[cfg.model].build(cfg, data)
    if getattr(cfg, "conditional", False):
        k = n_classes_of(data)
        G = {**G, "kwargs": {**G["kwargs"], "n_classes": k, "c_dim": class_dim(k)}}
        D = {**D, "kwargs": {**D["kwargs"], "n_classes": k}}
    if getattr(cfg, "inpaint", ""):
        G = {**G, "kwargs": {**G["kwargs"], "context_dim": 2 * data.dim}}
        D = {**D, "kwargs": {**D["kwargs"], "context_dim": 2 * data.dim}}
    if cfg.pack > 1:
        kw = dict(D["kwargs"])
        if "x_dim" in kw:
            kw["x_dim"] *= cfg.pack
        else:
            kw["shape"] = (kw["shape"][0] * cfg.pack, *kw["shape"][1:])
        D = {**D, "kwargs": kw, "pack": cfg.pack}
    if cfg.minibatch_std:
        kw = dict(D["kwargs"])
        if "x_dim" in kw:
            kw["x_dim"] += 1
            extra = 1
        else:
            kw["shape"] = (kw["shape"][0] + 1, *kw["shape"][1:])
            extra = kw["shape"][1] * kw["shape"][2]
        D = {**D, "kwargs": kw, "minibatch_std": extra}
    if cfg.spectral_norm:
        D = {**D, "spectral_norm": True}
    if getattr(cfg, "encoder", False):
        return _with_encoder(cfg, data, {"G": G, "D": D})
    return {"G": G, "D": D}


def construct(arch: dict) -> tuple[nn.Module, nn.Module]:
    """(G, D) from an architecture; initialisation uses the current torch RNG (seed it first)."""
    nets = []
    for name in ("G", "D"):
        spec = arch[name]
        if spec.get("class") not in NETWORKS:
            raise CheckpointError(f"unknown network class {spec.get('class')!r} for {name}")
        kwargs = dict(spec["kwargs"])
        if "shape" in kwargs:
            kwargs["shape"] = tuple(kwargs["shape"])
        net = NETWORKS[spec["class"]](**kwargs)
        if spec.get("spectral_norm"):
            spectral_normalise(net)
        if spec.get("minibatch_std"):
            net = MinibatchStd(net, int(spec["minibatch_std"]))
        if spec.get("pack", 1) > 1:
            net = Packed(net, int(spec["pack"]))
        nets.append(net)
    return nets[0], nets[1]


def construct_encoder(arch: dict) -> nn.Module | None:
    """E of a BiGAN architecture (None when it has none); initialisation uses the current torch RNG."""
    spec = arch.get("E")
    if spec is None:
        return None
    if spec.get("class") != MLPEncoder.__name__:
        raise CheckpointError(f"unknown network class {spec.get('class')!r} for E")
    return MLPEncoder(**spec["kwargs"])


def spectral_normalise(net: nn.Module) -> nn.Module:
    """Every linear and convolutional layer of `net` divided by its largest singular value (one power iteration
    per forward in training; torch's parametrization)."""
    from torch.nn.utils.parametrizations import spectral_norm

    for module in list(net.modules()):
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            spectral_norm(module)
    return net


def build_models(cfg, data) -> tuple[nn.Module, nn.Module]:
    """(G, D) for `cfg.model` on `data`; initialisation uses the current torch RNG (seed it first)."""
    return construct(architecture(cfg, data))


def n_classes(G: nn.Module) -> int:
    """How many classes a (conditional) generator takes; 0 for an unconditional one."""
    return int(getattr(G, "n_classes", 0) or 0)


def context_dim(G: nn.Module) -> int:
    """The length of the image context an inpainting generator takes (--inpaint); 0 for any other."""
    return int(getattr(G, "context_dim", 0) or 0)


def has_batchnorm(module: nn.Module) -> bool:
    """Whether a model's output for one sample depends on the rest of its batch (BatchNorm, or a minibatch
    standard-deviation feature): then real and generated batches must go through it apart."""
    return any(isinstance(m, (nn.modules.batchnorm._BatchNorm, MinibatchStd)) for m in module.modules())
