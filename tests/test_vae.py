"""The VAE contrast of Table 1: the importance-weighted bound against closed forms, dequantisation, training."""

import math

import pytest
import torch

from gankit import vae


def _constant_decoder(model: vae.VAE, prior_posterior: bool) -> vae.VAE:
    """p(x|z) independent of z (so log p(x) is one Gaussian), and optionally q(z|x) = p(z)."""
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        if prior_posterior:
            model.encoder[-1].weight.zero_()
            model.encoder[-1].bias.zero_()
    return model


def _log_px(model, x):
    mean, s = torch.sigmoid(model.decoder[-1].bias), model.sigma()
    return torch.distributions.Normal(mean, s).log_prob(x).sum(-1).double()


def test_iwae_bound_is_exact_when_q_is_the_posterior():
    torch.manual_seed(0)
    model = _constant_decoder(vae.VAE(20, 3, 16), prior_posterior=True)
    x = torch.rand(5, 20)
    assert torch.allclose(model.iwae_bound(x, k=7), _log_px(model, x), atol=1e-4)


def test_iwae_bound_is_below_log_p_and_tightens_with_k():
    torch.manual_seed(0)
    model = _constant_decoder(vae.VAE(20, 3, 16), prior_posterior=True)
    with torch.no_grad():  # q(z|x) = N(1.5, e^-1) per dimension: KL(q || p) = 3.9 nats, the gap at k = 1
        model.encoder[-1].bias.copy_(torch.tensor([1.5] * 3 + [-1.0] * 3))
    x = torch.rand(200, 20)
    exact = _log_px(model, x).detach()
    b1, b100 = model.iwae_bound(x, k=1), model.iwae_bound(x, k=100)
    # a bound in expectation (one estimate may exceed log p(x)); the gap shrinks with k
    gap1, gap100 = float((exact - b1).mean()), float((exact - b100).mean())
    assert 0 < gap100 < gap1 and abs(gap1 - 3 * 0.5 * (1.5**2 + math.exp(-1))) < 0.5
    # k = 1 is an unbiased estimate of the ELBO
    elbo = torch.stack([model.elbo(x).detach() for _ in range(50)]).mean(0).double()
    assert abs(float((elbo - b1).mean())) < 0.5  # one k = 1 draw per image: standard error ~0.15


def test_dequantised_pixels_stay_in_their_bins():
    x = torch.randint(0, 256, (1000, 7)).float() / 255
    d = vae.dequantise(x, torch.Generator().manual_seed(0))
    assert torch.equal(torch.floor(d * 256), torch.round(x * 255)) and d.min() >= 0 and d.max() < 1


def test_training_raises_the_elbo_and_reloads(tmp_path):
    x = (torch.rand(400, 16) > 0.5).float()
    cfg = vae.VAEConfig(z_dim=2, hidden=32, epochs=6, batch_size=50, lr=3e-3)
    model = vae.train(cfg, tmp_path / "v", progress=False, x=x)
    elbos = [r["elbo"] for r in map(__import__("json").loads, (tmp_path / "v" / "metrics.jsonl").read_text().splitlines())]
    assert len(elbos) == 6 and elbos[-1] > elbos[0] + 5
    again, cfg2 = vae.load(tmp_path / "v")
    assert cfg2 == cfg
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    assert again.sample(4, torch.Generator().manual_seed(0)).shape == (4, 16)
    with pytest.raises(vae.UsageError, match="already holds"):
        vae.train(cfg, tmp_path / "v", progress=False, x=x)
