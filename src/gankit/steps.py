"""The step functions of Algorithm 1 (Goodfellow et al. 2014), one update each. The formulas live in
the objective; these only sample, call it and apply the gradients.

Conditional runs pass the real minibatch's labels c: the generated minibatch takes the same c (so G's
classes are drawn from the data's label marginal) and D judges both halves with it. With the mode-seeking term
(--diversity) G's own minibatch takes the first half of c twice, so that its two halves are pairs sharing c."""

from __future__ import annotations

import torch

from gankit.state import TrainState


def d_step(s: TrainState, objective, x: torch.Tensor, c: torch.Tensor | None = None) -> dict:
    """One of the k discriminator updates of an iteration, on the real minibatch x."""
    # Sample minibatch of m noise samples {z(1), ..., z(m)} from noise prior p_g(z).
    z = s.G.input(s.noise())
    with torch.no_grad():
        fake = s.G.local(z, c)
    # (x: a minibatch of m examples {x(1), ..., x(m)} from the data generating distribution p_data(x).)
    # Update the discriminator by ascending its stochastic gradient:
    #     grad_theta_d 1/m sum_i [log D(x(i)) + log(1 - D(G(z(i))))]
    x = s.D.input(x)
    loss, stats = objective.d_loss(s.D.net, x, fake, c, index=s.d_updates)
    # (+ the gradient penalties the objective carries, if any)
    penalty, penalty_stats = objective.d_penalty(s.D.local, x, fake, c, s.d_updates)
    stats |= penalty_stats
    if penalty is not None:
        loss = loss + penalty
    s.D.zero_grad()
    loss.backward()
    s.D.step()
    objective.after_d_update(s.D)
    s.d_updates += 1
    return stats


def g_step(s: TrainState, objective, c: torch.Tensor | None = None, x_real: torch.Tensor | None = None) -> dict:
    """The generator update that ends an iteration, through a frozen D (`x_real`: the last real minibatch, for
    games whose G loss compares with real data)."""
    # Sample minibatch of m noise samples {z(1), ..., z(m)} from noise prior p_g(z).
    z = s.G.input(s.noise())
    x_real = s.D.input(x_real) if objective.g_needs_real else None
    # (mode seeking, if the objective carries it: the minibatch's two halves share their c, see Game.g_pairs)
    c, x_real = objective.g_pairs(c), objective.g_pairs(x_real)
    # Update the generator by descending its stochastic gradient:
    #     grad_theta_g 1/m sum_i log(1 - D(G(z(i))))    (or, non-saturating, ascend log D(G(z(i))))
    with s.D.frozen():
        fake = s.G.net(z, c)
        loss, stats = objective.g_loss(s.D.local, fake, c, x_real)
        # (+ lambda / (d_I / d_z + eps) on pairs G(z1, c), G(z2, c), the mode-seeking term, if any)
        diversity, diversity_stats = objective.g_regulariser(fake, z)
        stats |= diversity_stats
        if diversity is not None:
            loss = loss + diversity
        s.G.zero_grad()
        loss.backward()
        s.G.step()
    return stats


def simultaneous_step(s: TrainState, objective, x: torch.Tensor, c: torch.Tensor | None = None) -> dict:
    """Both players' gradients from one minibatch and one forward of D, applied together (the paper's
    released code, not Algorithm 1 as printed)."""
    z = s.G.input(s.noise())
    x = s.D.input(x)
    fake = s.G.net(z, c)
    d_loss, g_loss, stats = objective.joint_losses(s.D.net, x, fake, c, index=s.d_updates)
    penalty, penalty_stats = objective.d_penalty(s.D.local, x, fake, c, s.d_updates)
    stats |= penalty_stats
    if penalty is not None:
        d_loss = d_loss + penalty
    s.D.zero_grad()
    s.G.zero_grad()
    torch.autograd.backward(d_loss, inputs=s.D.params, retain_graph=True)
    torch.autograd.backward(g_loss, inputs=s.G.params)
    s.D.step()
    s.G.step()
    objective.after_d_update(s.D)
    s.d_updates += 1
    return stats


def bigan_d_step(s: TrainState, objective, x: torch.Tensor, c: torch.Tensor | None = None) -> dict:
    """One of the k discriminator updates of a BiGAN (Donahue et al. 2017, Dumoulin et al. 2017), on the real
    minibatch x: D judges the pairs (x, E(x)) against (G(z), z). (c: unused, a BiGAN is unconditional.)"""
    # Sample minibatch of m noise samples {z(1), ..., z(m)} from noise prior p_g(z).
    z = s.G.input(s.noise())
    # (x: a minibatch of m examples {x(1), ..., x(m)} from the data generating distribution p_data(x).)
    x = s.D.input(x)
    # Encode the examples and generate from the noise, both held fixed for D's update.
    with torch.no_grad():
        e_x, g_z = s.E.local(s.E.input(x)), s.G.local(z)
    # Update the discriminator by ascending its stochastic gradient:
    #     grad_theta_d 1/m sum_i [log D(x(i), E(x(i))) + log(1 - D(G(z(i)), z(i)))]
    loss, stats = objective.d_loss(s.D.net, x, e_x, g_z, z)
    s.D.zero_grad()
    loss.backward()
    s.D.step()
    s.d_updates += 1
    return stats


def bigan_ge_step(s: TrainState, objective, c: torch.Tensor | None = None, x_real: torch.Tensor | None = None) -> dict:
    """The update of G and E together that ends a BiGAN iteration, through a frozen D, on the last real minibatch
    `x_real` (E's input) and fresh noise (G's)."""
    # Sample minibatch of m noise samples {z(1), ..., z(m)} from noise prior p_g(z).
    z = s.G.input(s.noise())
    x = s.E.input(x_real)
    # Update the generator and the encoder by descending their stochastic gradient (non-saturating form):
    #     grad_(theta_g, theta_e) 1/m sum_i [-log(1 - D(x(i), E(x(i)))) - log D(G(z(i)), z(i))]
    with s.D.frozen():
        loss, stats = objective.ge_loss(s.D.local, x, s.E.net(x), s.G.net(z), z)
        s.G.zero_grad()
        s.E.zero_grad()
        loss.backward()
        s.G.step()
        s.E.step()
    return stats
