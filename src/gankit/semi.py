"""Semi-supervised learning with a K-class discriminator (Salimans et al. 2016): the labelled set a run draws, and
the test error of D's classes. The game is `gankit.objectives.SemiSupervised`, the nets `gankit.models.semi`.
"""

from __future__ import annotations

import torch

from gankit.data.batches import Labelled
from gankit.errors import ConfigError, UsageError

N_TOY_TEST = 10_000  # a toy run's test set: this many fresh samples of its mixture, labelled by their mode
TOY_TEST_SEED = 31337


def labelled_batches(cfg, data, device) -> Labelled:
    """The `cfg.labels` labelled training samples, balanced over the K classes and drawn by `cfg.seed`, as the
    run's labelled minibatches (of cfg.batch_size, cycled)."""
    from gankit.models import n_classes_of
    from gankit.probe import balanced_indices

    k = n_classes_of(data, "config key 'labels'")
    try:
        idx = balanced_indices(data.labels, cfg.labels, k, seed=cfg.seed)
    except UsageError as e:
        raise ConfigError(f"config key 'labels': {e}") from None
    return Labelled(data.x[idx].to(device), data.labels[idx].to(device), cfg.batch_size, cfg.seed)


def test_set(cfg, spec) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(x, labels, what they are): the dataset's test split, or for a toy fresh samples labelled by their mode."""
    if spec.kind == "toy":
        from gankit.data.toy import sample_mixture

        x, y = sample_mixture(spec.modes, spec.mode_std, N_TOY_TEST, torch.Generator().manual_seed(TOY_TEST_SEED),
                              with_modes=True)
        return x, y, f"{N_TOY_TEST} fresh samples of {spec.name} (seed {TOY_TEST_SEED})"
    from gankit.data import load_dataset

    if cfg.dataset.startswith("folder:"):
        raise UsageError(f"dataset '{cfg.dataset}' has no test split to measure the classification error on")
    t = load_dataset(cfg.dataset, "test", cfg.data_dir, None, cfg.pixel_range, image_size=cfg.image_size)
    return t.x, t.labels, f"{cfg.dataset} test split"


@torch.no_grad()
def classification_error(D, x: torch.Tensor, y: torch.Tensor, device, batch: int = 1000) -> float:
    """Share of x whose argmax class logit (D in eval mode: no noise) is not y."""
    from gankit.gan import eval_mode

    wrong = 0
    with eval_mode(D):
        for i in range(0, len(x), batch):
            logits, _ = D.classify(x[i:i + batch].to(device).float())
            wrong += int((logits.argmax(1).cpu() != y[i:i + batch]).sum())
    return wrong / len(x)


def ssl_error(gan) -> dict:
    """The test error of a semi-supervised run's D as a classifier, with what it was measured on."""
    if not hasattr(gan.D, "classify"):
        raise UsageError(f"metric 'ssl-error' needs a semi-supervised run (objective semi-supervised, model "
                         f"semi-mlp); this run's objective is '{gan.cfg.objective}', model '{gan.cfg.model}'")
    x, y, what = test_set(gan.cfg, gan.spec)
    error = classification_error(gan.D, x, y, gan.device)
    return {"error": error, "accuracy": 1 - error, "n_test": len(x), "labels": gan.cfg.labels, "test": what,
            "protocol": f"ssl-error: argmax of D's class logits, D in eval mode, on the {what}"}
