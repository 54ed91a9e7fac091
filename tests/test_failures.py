import math

import pytest
import torch
from torch import nn

from gankit import config as C
from gankit import failures
from gankit.data import load_dataset
from gankit.metrics.collapse import CollapseMonitor, diversity
from gankit.train import GAN, build


class Scale(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.s = nn.Parameter(torch.tensor(float(s)))

    def forward(self, z):
        return self.s * z


class ExactLogRatio(nn.Module):
    """logit D(x) = log N(x; 0, 1) - log N(x; 0, 2^2) = log 2 - 3 x^2 / 8: the optimal D for p_g = N(0, 4)."""

    def forward(self, x):
        return (math.log(2) - 3 * x[:, 0] ** 2 / 8)


def _toy_gan(G, D):
    cfg = C.from_dict({"dataset": "gaussian1d", "z_dim": 1})
    return GAN(G, D, cfg, load_dataset("gaussian1d"), torch.device("cpu"))


def test_rejection_sampling_with_the_exact_ratio_recovers_p_data():
    """With gamma = 0, DRS accepts with probability p_data / (M p_g): exact rejection sampling."""
    torch.manual_seed(0)
    gan = _toy_gan(Scale(2.0), ExactLogRatio())
    kept, info = failures.rejection_sample(gan, 20_000, gamma=0.0, eps=0.0)
    assert kept.std().item() == pytest.approx(1.0, abs=0.03) and kept.mean().item() == pytest.approx(0.0, abs=0.03)
    assert info["acceptance_rate"] == pytest.approx(0.5, abs=0.02)  # 1/M with M = max ratio = 2


def test_vanishing_gradient_of_the_minimax_loss():
    gan = build(C.from_dict({"dataset": "ring8", "hidden": 64, "layers": 2}))
    rows = failures.vanishing_gradients(gan, d_steps=300, g_steps=40, batch=128, lr=0.005)
    first = rows[0]
    assert first["minimax: D(G(z))"] < 0.01  # D rejects G's samples confidently
    assert first["minimax: |grad| minimax"] < first["minimax: |grad| nonsaturating"] / 100
    assert rows[-1]["minimax: D(G(z))"] < 0.01  # stuck
    assert rows[-1]["nonsaturating: D(G(z))"] > 0.5  # escapes


def test_collapse_monitor_warns_on_a_sharp_drop():
    data = load_dataset("ring8")
    monitor = CollapseMonitor(data)
    spread = data.x[:2500]
    for step in range(3):
        values, warning = monitor(step, spread)
        assert warning is None and values["modes_covered"] == 8
    collapsed = data.modes[:1].repeat(2500, 1) + 0.01 * torch.randn(2500, 2)
    values, warning = monitor(3, collapsed)
    assert values["modes_covered"] == 1 and "mode collapse" in warning
    assert diversity(collapsed) < 0.1 * diversity(spread)


@pytest.mark.slow
def test_helvetica_scenario_collapses(tmp_path):
    rows = failures.run_helvetica(tmp_path / "h.png", tmp_path / "run", base_steps=3000, g_steps=1000,
                                  progress=False)
    assert rows[0]["modes_covered"] >= 7 and rows[-1]["modes_covered"] <= rows[0]["modes_covered"] // 2


def test_disjoint_supports_starve_the_minimax_gradient_but_not_the_wasserstein_one():
    """Arjovsky & Bottou (2017): as D nears its optimum on disjoint supports, JSD sits at log 2 and the minimax
    gradient vanishes; a WGAN-GP critic keeps sending G a gradient of order one."""
    import math

    from gankit.failures import disjoint_gradients

    start, trained = disjoint_gradients(budgets=(0, 300))
    assert trained["jsd_lower_bound"] > math.log(2) - 0.01
    assert trained["|grad| minimax"] < 1e-5 < start["|grad| minimax"]
    assert trained["|grad| wasserstein"] > 0.3
