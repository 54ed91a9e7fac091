"""`gankit eval`: run a metric on a trained run and record the result in its directory."""

from __future__ import annotations

from pathlib import Path

import torch

from gankit import rundir
from gankit.errors import UsageError
from gankit.metrics.modes import mode_metrics
from gankit.registry import Entry
from gankit.sampling import load_run


def _modes(run_dir, n_samples, seed, device, member=None, **_):
    gan = load_run(run_dir, device, member=member)
    if gan.spec.kind != "toy":
        raise UsageError(f"metric 'modes' needs a toy dataset with known modes, not '{gan.spec.name}'")
    torch.manual_seed(seed)
    return mode_metrics(gan.sample(n_samples or 2500).cpu(), gan.spec.modes, gan.spec.mode_std)


def _classes(run_dir, n_samples, seed, device, member=None, **_):
    from gankit.metrics.classifier import class_coverage, predict

    gan, model, meta, x = _classified_samples(run_dir, "classes", n_samples or 10_000, seed, device, member)
    result = class_coverage(predict(model, x), meta["test_histogram"])
    result.update({"protocol": f"classes{(n_samples or 10_000) // 1000}k_{gan.cfg.dataset}",
                   "classifier_test_accuracy": meta["test_accuracy"], "classifier_sha256": meta["sha256"]})
    return result


def _parzen(run_dir, n_samples, seed, device, **options):
    from gankit.metrics.parzen import evaluate_run

    return evaluate_run(run_dir, n_samples=n_samples or 10_000, seed=seed, device=device, **options)


def _features_metric(name: str):
    return lambda run_dir, n_samples, seed, device, member=None, **_: _feature_metric(
        run_dir, name, n_samples or 10_000, seed, device, member)


METRICS: dict[str, Entry] = {
    "modes": Entry(_modes, "modes covered and high-quality fraction (toy data)", ("toy",)),
    "parzen": Entry(_parzen, "Parzen-window log-likelihood of the test set (Table 1)"),
    "classes": Entry(_classes, "classes covered by gankit's classifier (MNIST family)", ("image",)),
    "fd": Entry(_features_metric("fd"), "Frechet distance on gankit's classifier features", ("image",)),
    "kid": Entry(_features_metric("kid"), "kernel inception-style distance on the same features", ("image",)),
    "pr": Entry(_features_metric("pr"), "precision and recall (k-NN manifolds) on the same features", ("image",)),
}


def run_metric(run_dir: str | Path, metric: str, n_samples: int | None = None, seed: int = 0,
               device: str = "auto", member: int | None = None, **options) -> dict:
    """Compute `metric` for the run and merge it into RUN_DIR/eval.json. For a seed ensemble: for `member`, or for
    every member with the ensemble's mean, std, min and max of each number (`members`, `ensemble`)."""
    if metric not in METRICS:
        raise UsageError(f"unknown metric '{metric}' (choose from {', '.join(METRICS)})")
    n = rundir.read_config(run_dir).seeds if rundir.holds_run(Path(run_dir)) else 1
    if n > 1 and member is None:
        from gankit.ensemble import spread

        rows = [METRICS[metric].build(run_dir, n_samples, seed, device, member=e, **options) for e in range(n)]
        numbers = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        result = {"members": rows, "ensemble": {k: spread([float(r[k]) for r in rows]) for k in numbers}}
    else:
        result = METRICS[metric].build(run_dir, n_samples, seed, device, member=member, **options)
    record = rundir.read_json(run_dir, "eval.json")
    record[metric if member is None else f"{metric}:member{member}"] = result
    rundir.write_json(run_dir, "eval.json", record)
    return result


SHORT = {"mnist": "mnist", "fashion-mnist": "fmnist", "kmnist": "kmnist"}


def _classified_samples(run_dir, metric: str, n: int, seed: int, device: str, member: int | None = None):
    """(GAN, domain classifier, its metadata, n samples as [n, 784] images in [0, 1]) for a metric that
    needs the classifier of an MNIST-family run."""
    from gankit.metrics.classifier import get_classifier

    gan = load_run(run_dir, device, member=member)
    if gan.cfg.dataset not in SHORT:
        raise UsageError(f"metric '{metric}' needs an MNIST-family image dataset, not '{gan.spec.name}'")
    model, meta = get_classifier(gan.cfg.dataset, gan.cfg.data_dir)
    torch.manual_seed(seed)
    return gan, model, meta, gan.spec.images(gan.sample(n).cpu()).reshape(-1, 784)


def _feature_metric(run_dir, metric: str, n: int, seed: int, device: str, member: int | None = None) -> dict:
    """FD / KID / precision-recall between n generated and the test images, on the domain classifier's
    penultimate features."""
    from gankit.data import load_dataset
    from gankit.metrics.classifier import features

    gan, model, meta, x = _classified_samples(run_dir, metric, n, seed, device, member)
    fake = features(model, x)
    real = features(model, load_dataset(gan.cfg.dataset, "test", gan.cfg.data_dir).x[:n])
    tag = f"{n // 1000}k_{SHORT.get(gan.cfg.dataset, gan.cfg.dataset)}"
    if metric == "fd":
        from gankit.metrics.frechet import frechet_distance

        out = {"value": frechet_distance(fake, real)}
    elif metric == "kid":
        from gankit.metrics.kid import kernel_distance

        out = kernel_distance(fake, real, seed=seed)
    else:
        from gankit.metrics.precision_recall import precision_recall

        out = precision_recall(real, fake)
    return {**out, "protocol": f"{metric}{tag}", "n_generated": len(fake), "reference": f"test split, {len(real)} images",
            "features": f"gankit SmallCNN v{meta['version']} penultimate layer (128), sha256 {meta['sha256'][:12]}",
            "classifier_test_accuracy": meta["test_accuracy"]}


def format_result(metric: str, r: dict) -> str:
    if "ensemble" in r:  # a seed ensemble: each member, then mean ± std (min, max) of each number
        lines = [f"member {e}: {format_result(metric, row)}" for e, row in enumerate(r["members"])]
        lines += [f"ensemble {k}: {v['mean']:.4g} ± {v['std']:.4g} (min {v['min']:.4g}, max {v['max']:.4g})"
                  for k, v in r["ensemble"].items()]
        return "\n".join(lines)
    if metric == "fd":
        return f"{r['protocol']}: {r['value']:.3f} ({r['features']})"
    if metric == "kid":
        return f"{r['protocol']}: {r['mean']:.5f} ± {r['std']:.5f} ({r['n_subsets']} subsets of {r['subset_size']})"
    if metric == "pr":
        return f"{r['protocol']}: precision {r['precision']:.3f}, recall {r['recall']:.3f} (k = {r['k']})"
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
