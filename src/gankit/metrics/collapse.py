"""Signs of mode collapse during training: sample diversity and mode coverage against their best so far."""

from __future__ import annotations

import torch

from gankit.metrics.modes import mode_metrics


def diversity(x: torch.Tensor, n: int = 500) -> float:
    """Mean pairwise Euclidean distance among (up to n of) the samples."""
    x = x[:n].double().reshape(min(n, len(x)), -1)
    d = torch.cdist(x, x)
    return float(d.sum() / max(1, len(x) * (len(x) - 1)))


class CollapseMonitor:
    """Warns when mode coverage (toy data) or sample diversity falls below `drop` times its best so far."""

    def __init__(self, data, drop: float = 0.5, warmup: int = 2):
        self.data, self.drop, self.warmup = data, drop, warmup
        self.best: dict[str, float] = {}
        self.seen = 0

    def __call__(self, step: int, samples: torch.Tensor) -> tuple[dict, str | None]:
        values = {"diversity": diversity(samples)}
        if self.data.kind == "toy" and self.data.modes is not None:
            values["modes_covered"] = float(mode_metrics(samples, self.data.modes, self.data.mode_std)["modes_covered"])
        self.seen += 1
        warning = None
        for key, v in values.items():
            best = self.best.get(key, v)
            if self.seen > self.warmup and v < self.drop * best:
                warning = (f"step {step}: possible mode collapse: {key} fell to {v:.3g} from a best of {best:.3g} "
                           f"(see samples/)")
            self.best[key] = max(best, v)
        return values, warning
