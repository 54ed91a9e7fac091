import math

import torch

from gankit import losses


def test_value_at_zero_logits_is_minus_two_log_two():
    z = torch.zeros(16)
    assert torch.isclose(losses.value(z, z), torch.tensor(-2 * math.log(2)))
    assert torch.isclose(losses.discriminator_loss(z, z), torch.tensor(2 * math.log(2)))


def test_losses_match_closed_forms():
    real = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    fake = torch.tensor([-3.0, 0.0, 1.5], dtype=torch.float64)
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected_d = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    assert torch.allclose(losses.discriminator_loss(real, fake), expected_d)
    assert torch.allclose(losses.generator_loss_minimax(fake), torch.log(1 - d_fake).mean())
    assert torch.allclose(losses.generator_loss_nonsaturating(fake), -torch.log(d_fake).mean())


def test_losses_are_finite_for_extreme_logits():
    big = torch.tensor([1e4, -1e4])
    for v in (losses.discriminator_loss(big, big), losses.generator_loss_minimax(big),
              losses.generator_loss_nonsaturating(big)):
        assert torch.isfinite(v)
    # D certain that fakes are fake: -log D(G(z)) is large but finite (=1e4 for logit -1e4)
    assert torch.isclose(losses.generator_loss_nonsaturating(torch.tensor([-1e4])), torch.tensor(1e4))


def _grad(fn, logit):
    l = torch.tensor([logit], dtype=torch.float64, requires_grad=True)
    fn(l).backward()
    return l.grad.item()


def test_minimax_gradient_vanishes_when_d_rejects_fakes_but_nonsaturating_does_not():
    # D(G(z)) = sigmoid(-20) ~ 2e-9: the paper's early-learning regime
    g_mm = _grad(losses.generator_loss_minimax, -20.0)
    g_ns = _grad(losses.generator_loss_nonsaturating, -20.0)
    assert abs(g_mm) < 1e-8  # d/dl log(1 - sigmoid(l)) = -sigmoid(l)
    assert math.isclose(g_mm, -torch.sigmoid(torch.tensor(-20.0, dtype=torch.float64)).item(), rel_tol=1e-9)
    assert math.isclose(g_ns, -1.0, rel_tol=1e-6)  # d/dl -log sigmoid(l) = sigmoid(l) - 1


def test_generator_loss_lookup():
    assert losses.generator_loss("minimax") is losses.generator_loss_minimax
    try:
        losses.generator_loss("wasserstein")
    except ValueError as e:
        assert "wasserstein" in str(e)
    else:
        raise AssertionError("unknown loss accepted")
