"""Generator and discriminator architectures; `build_models` picks them from a Config and a dataset."""

from __future__ import annotations

import torch
from torch import nn

from gankit.models.conv import DCGANDiscriminator, DCGANGenerator
from gankit.models.mlp import BNMLPGenerator, MLPDiscriminator, MLPGenerator, TutorialDiscriminator
from gankit.models.paper import (PaperConvDiscriminator, PaperConvGenerator, PaperDiscriminator, PaperGenerator,
                                 output_bias_from_mean)

__all__ = ["MLPGenerator", "MLPDiscriminator", "PaperGenerator", "PaperDiscriminator", "DCGANGenerator",
           "DCGANDiscriminator", "build_models"]


def _output_for(data) -> str:
    if data.kind != "image":
        return "linear"
    return "sigmoid" if data.value_range == (0.0, 1.0) else "tanh"


def build_models(cfg, data) -> tuple[nn.Module, nn.Module]:
    """(G, D) for `cfg.model` on `data`; initialisation uses the current torch RNG (seed it first)."""
    output = _output_for(data)
    if cfg.model == "mlp":
        return (MLPGenerator(cfg.z_dim, data.dim, cfg.hidden, cfg.layers, output),
                MLPDiscriminator(data.dim, cfg.hidden, cfg.layers))
    if cfg.model == "bn-mlp":
        return BNMLPGenerator(cfg.z_dim, data.dim, output), TutorialDiscriminator(data.dim)
    if cfg.model == "dcgan":
        if data.kind != "image":
            raise ValueError(f"the DCGAN nets are for images, not dataset '{data.name}'")
        return (DCGANGenerator(cfg.z_dim, data.shape, cfg.hidden, output),
                DCGANDiscriminator(data.shape, cfg.hidden))
    if cfg.model == "paper-conv":
        if data.kind != "image":
            raise ValueError(f"the paper's conv nets are for images, not dataset '{data.name}'")
        bias = output_bias_from_mean(data.images(data.x[:10_000]).mean(0).reshape(-1), "sigmoid")
        return (PaperConvGenerator(cfg.z_dim, data.shape, output_bias=bias if output == "sigmoid" else None,
                                   output=output), PaperConvDiscriminator(data.shape))
    if cfg.model == "paper":
        if data.kind != "image":
            raise ValueError(f"the paper nets are for images, not dataset '{data.name}'")
        bias = output_bias_from_mean(data.x.mean(0), output)
        return PaperGenerator(cfg.z_dim, data.dim, output_bias=bias, output=output), PaperDiscriminator(data.dim)
    raise ValueError(f"unknown model '{cfg.model}' (choose from mlp, bn-mlp, dcgan, paper, paper-conv)")


def has_batchnorm(module: nn.Module) -> bool:
    """Whether a model's output for one sample depends on the rest of its batch."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())

