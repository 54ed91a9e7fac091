"""`gankit eval`: run a metric on a trained run and record the result in its directory."""

from __future__ import annotations

from pathlib import Path

from gankit import rundir
from gankit.metrics.modes import mode_metrics
from gankit.sampling import load_run


def run_metric(run_dir: str | Path, metric: str, n_samples: int | None = None, seed: int = 0,
               device: str = "auto", **options) -> dict:
    """Compute `metric` for the run and merge it into RUN_DIR/eval.json."""
    if metric == "modes":
        gan = load_run(run_dir, device)
        if gan.data.kind != "toy":
            raise ValueError(f"metric 'modes' needs a toy dataset with known modes, not '{gan.data.name}'")
        import torch

        torch.manual_seed(seed)
        result = mode_metrics(gan.sample(n_samples or 2500).cpu(), gan.data.modes, gan.data.mode_std)
    elif metric == "classes":
        from gankit.metrics.classifier import class_coverage, get_classifier, predict

        gan = load_run(run_dir, device)
        if gan.data.kind != "image":
            raise ValueError(f"metric 'classes' needs an MNIST-family image dataset, not '{gan.data.name}'")
        model, meta = get_classifier(gan.cfg.dataset, gan.cfg.data_dir)
        import torch

        torch.manual_seed(seed)
        x = gan.data.images(gan.sample(n_samples or 10_000).cpu()).reshape(-1, 784)
        result = class_coverage(predict(model, x), meta["test_histogram"])
        result.update({"protocol": f"classes{(n_samples or 10_000) // 1000}k_{gan.cfg.dataset}",
                       "classifier_test_accuracy": meta["test_accuracy"], "classifier_sha256": meta["sha256"]})
    elif metric == "parzen":
        from gankit.metrics.parzen import evaluate_run

        result = evaluate_run(run_dir, n_samples=n_samples or 10_000, seed=seed, device=device, **options)
    else:
        raise ValueError(f"unknown metric '{metric}' (choose from modes, parzen, classes)")
    record = rundir.read_json(run_dir, "eval.json")
    record[metric] = result
    rundir.write_json(run_dir, "eval.json", record)
    return result


def format_result(metric: str, r: dict) -> str:
    if metric == "modes":
        return (f"modes covered {r['modes_covered']}/{r['n_modes']}, high-quality fraction "
                f"{r['high_quality_fraction']:.3f}, KL to uniform {r['kl_to_uniform']:.4f} ({r['n_samples']} samples)")
    if metric == "classes":
        return (f"classes covered {r['classes_covered']}/{r['n_classes']}, KL to the test histogram "
                f"{r['kl_to_test']:.4f}, histogram {r['histogram']} (classifier accuracy "
                f"{r['classifier_test_accuracy']:.3f})")
    if metric == "parzen":
        return (f"Parzen log-likelihood {r['mean']:.2f} ± {r['stderr']:.2f} nats (sigma {r['sigma']:.4g}, "
                f"{r['n_samples']} samples, {r['n_test']} test points)")
    return str(r)
