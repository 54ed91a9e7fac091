"""`gankit eval`: run a metric on a trained run and record the result in its directory."""

from __future__ import annotations

from pathlib import Path

import torch

from gankit import rundir
from gankit.data.toy import eval_samples
from gankit.errors import UsageError
from gankit.metrics.modes import mode_metrics
from gankit.registry import Entry
from gankit.sampling import load_run


def _modes(run_dir, n_samples, seed, device, member=None, truncation=None, **_):
    gan = load_run(run_dir, device, member=member, truncation=truncation)
    if gan.spec.kind != "toy":
        raise UsageError(f"metric 'modes' needs a toy dataset with known modes, not '{gan.spec.name}'")
    torch.manual_seed(seed)
    return mode_metrics(gan.sample(n_samples or eval_samples(len(gan.spec.modes))).cpu(), gan.spec.modes, gan.spec.mode_std)


def _classes(run_dir, n_samples, seed, device, classifier=None, member=None, truncation=None, **_):
    from gankit.metrics.classifier import class_coverage, predict

    gan, model, meta, x = _classified_samples(run_dir, "classes", n_samples or 10_000, seed, device, classifier,
                                              member, truncation)
    result = class_coverage(predict(model, x), meta["test_histogram"])
    result.update({"protocol": f"classes{(n_samples or 10_000) // 1000}k_{gan.cfg.dataset}",
                   "classifier_test_accuracy": meta["test_accuracy"], "classifier_sha256": meta["sha256"],
                   "classifier": meta["protocol"], "quantisation": "8-bit", "versions": versions()})
    return result


def _conditional(run_dir, n_samples, seed, device, truncation=None, **_):
    """A conditional run's obedience to c (see gankit.metrics.conditional), with every class asked for equally
    often; on an MNIST-family set also the Frechet distance per class against that class's test images."""
    from gankit.metrics import conditional

    gan = load_run(run_dir, device, truncation=truncation)
    if not gan.n_classes:
        raise UsageError(f"metric 'conditional' needs a conditional run (trained with --conditional); {run_dir} is not")
    k = gan.n_classes
    if gan.spec.kind == "toy":
        n = n_samples or 1000 * k
        torch.manual_seed(seed)
        c = torch.arange(n) % k
        result = conditional.on_mode(gan.sample(n, c=c).cpu(), c, gan.spec.modes, gan.spec.mode_std)
        return {**result, "protocol": f"on-mode fraction per class, {n} samples, within 3 std of mode c"}
    from gankit.data import load_dataset
    from gankit.metrics.classifier import features, predict
    from gankit.metrics.frechet import frechet_distance

    gan, model, meta, x = _classified_samples(run_dir, "conditional", n_samples or 10_000, seed, device,
                                              truncation=truncation)
    c = gan.classes(len(x))  # the labels gan.sample used: 0, 1, ..., K-1, 0, ...
    result = conditional.classifier_accuracy(predict(model, x), c, k)
    if len(x) // k > 128:  # the FD needs more samples than the classifier's 128 features, in every class
        test = load_dataset(gan.cfg.dataset, "test", gan.cfg.data_dir)
        fake_f, real_f = features(model, x), features(model, test.x)
        result["fd_per_class"] = [round(frechet_distance(fake_f[c.cpu() == j], real_f[test.labels == j]), 4)
                                  for j in range(k)]
    return {**result, "protocol": f"gankit classifier's label = c, {len(x)} samples",
            "classifier_test_accuracy": meta["test_accuracy"], "classifier_sha256": meta["sha256"]}


def _parzen(run_dir, n_samples, seed, device, sigmas=None, valid_size=1000, member=None, truncation=None, **_):
    from gankit.metrics.parzen import evaluate_run

    return evaluate_run(run_dir, n_samples=n_samples or 10_000, seed=seed, device=device, sigmas=sigmas,
                        valid_size=valid_size, member=member, truncation=truncation)


def _ssl_error(run_dir, n_samples, seed, device, member=None, truncation=None, **_):
    from gankit.semi import ssl_error

    if truncation is not None:
        raise UsageError("metric 'ssl-error' judges D's class logits on the test images; it draws no samples to "
                         "truncate")
    return ssl_error(load_run(run_dir, device, member=member))


def _features_metric(name: str):
    return lambda run_dir, n_samples, seed, device, **options: _feature_metric(run_dir, name, n_samples or 10_000,
                                                                                seed, device, **options)


METRICS: dict[str, Entry] = {
    "modes": Entry(_modes, "modes covered and high-quality fraction (toy data)", ("toy",)),
    "conditional": Entry(_conditional, "conditional runs: share of samples of class c that are of class c (on "
                                       "mode c for toys; by gankit's classifier for the MNIST family), per class"),
    "parzen": Entry(_parzen, "Parzen-window log-likelihood of the test set (Table 1)"),
    "classes": Entry(_classes, "classes covered by gankit's classifier (MNIST family)", ("image",)),
    "fd": Entry(_features_metric("fd"), "Frechet distance (+ bootstrap interval, FD_inf) on --features", ("image",)),
    "fid": Entry(_features_metric("fid"), "FID: Frechet distance on Inception pool3 features (needs the weights "
                 "file)", ("image",)),
    "kid": Entry(_features_metric("kid"), "kernel inception-style distance on --features", ("image",)),
    "pr": Entry(_features_metric("pr"), "precision and recall (k-NN manifolds, k = 3) on --features", ("image",)),
    "dc": Entry(_features_metric("dc"), "density and coverage (Naeem et al. 2020, k = 5) on --features", ("image",)),
    "ssl-error": Entry(_ssl_error, "semi-supervised runs: test error of D's class logits (Salimans et al. 2016)"),
}


# numbers a result records about how it was measured, not what: not aggregated over an ensemble's members
BOOKKEEPING = ("n_samples", "n_generated", "n_reference", "seed", "classifier_test_accuracy", "n_modes")


def run_metric(run_dir: str | Path, metric: str, n_samples: int | None = None, seed: int = 0,
               device: str = "auto", member: int | None = None, truncation: float | None = None, **options) -> dict:
    """Compute `metric` for the run and merge it into RUN_DIR/eval.json. For a seed ensemble: for `member`, or for
    every member with the ensemble's mean, std, min and max of each number (`members`, `ensemble`). `truncation` t
    draws G's samples from z restricted to [-t, t] per coordinate, recorded apart as METRIC@truncation=t."""
    if truncation is not None:
        options["truncation"] = truncation
    if metric not in METRICS:
        raise UsageError(f"unknown metric '{metric}' (choose from {', '.join(METRICS)})")
    from gankit.config import n_members

    cfg = rundir.read_config(run_dir) if rundir.holds_run(Path(run_dir)) else None
    n = n_members(cfg) if cfg is not None else 1
    if n > 1 and member is None:
        from gankit.ensemble import spread, swept

        rows = [METRICS[metric].build(run_dir, n_samples, seed, device, member=e, **options) for e in range(n)]
        numbers = [k for k, v in rows[0].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and k not in BOOKKEEPING]
        result = {"members": rows, "ensemble": {k: spread([float(r[k]) for r in rows]) for k in numbers}}
        if cfg.sweep:  # each swept value: mean ± std over its seeds (members value x seed, see member_config)
            key, values = swept(cfg)
            result["sweep"] = {"key": key, "values": [
                {"value": v, "metrics": {k: spread([float(r[k]) for r, w in zip(rows, values) if w == v])
                                         for k in numbers}}
                for v in dict.fromkeys(values)]}
    else:
        result = METRICS[metric].build(run_dir, n_samples, seed, device, member=member, **options)
    if truncation is not None:  # a different protocol: say so in its name as well
        result["truncation"] = truncation
        for r in [result, *result.get("members", [])]:
            if "protocol" in r:
                r["protocol"] += f"_trunc{truncation:g}"
    key = metric + (f"@truncation={truncation:g}" if truncation is not None else "")
    record = rundir.read_json(run_dir, "eval.json")
    record[key if member is None else f"{key}:member{member}"] = result
    rundir.write_json(run_dir, "eval.json", record)
    return result


SHORT = {"mnist": "mnist", "fashion-mnist": "fmnist", "kmnist": "kmnist"}


def _classified_samples(run_dir, metric: str, n: int, seed: int, device: str, classifier: str | None = None,
                        member: int | None = None, truncation: float | None = None):
    """(GAN, domain classifier, its metadata, n samples as [n, 784] 8-bit images in [0, 1]) for a metric that
    needs the classifier of an MNIST-family run."""
    from gankit.metrics.classifier import get_classifier
    from gankit.metrics.features import quantise

    gan = load_run(run_dir, device, member=member, truncation=truncation)
    if gan.cfg.dataset not in SHORT:
        raise UsageError(f"metric '{metric}' needs an MNIST-family image dataset, not '{gan.spec.name}'")
    model, meta = get_classifier(gan.cfg.dataset, gan.cfg.data_dir, protocol=classifier)
    torch.manual_seed(seed)
    return gan, model, meta, quantise(gan.spec.images(gan.sample(n).cpu())).reshape(-1, 784)


def _short(dataset: str) -> str:
    if dataset.startswith("folder:"):
        return "folder-" + Path(dataset[len("folder:"):]).name
    return SHORT.get(dataset, dataset)


def reference_images(cfg, n: int) -> tuple[torch.Tensor, str]:
    """Up to n real images [m, C, H, W] in [0, 1] to compare samples with, and which ones they are: the test
    split where the dataset has one, else (an image folder) the folder's own images."""
    from gankit.data import load_dataset

    if cfg.dataset.startswith("folder:"):
        data = load_dataset(cfg.dataset, "train", cfg.data_dir, image_size=cfg.image_size)
        where = f"{cfg.dataset} (all its images at {cfg.image_size} x {cfg.image_size}; a folder has no test split)"
    else:
        data = load_dataset(cfg.dataset, "test", cfg.data_dir)
        where = f"{cfg.dataset} test split"
    x = data.x[:n].reshape(-1, *data.shape)
    return x, f"{where}, first {len(x)} images"


def versions() -> dict:
    import numpy as np

    from gankit import __version__

    return {"gankit": __version__, "torch": torch.__version__, "numpy": np.__version__}


def _feature_metric(run_dir, metric: str, n: int, seed: int, device: str, features: str = "auto",
                    classifier: str | None = None, bootstrap: int = 200, member: int | None = None,
                    truncation: float | None = None, **_) -> dict:
    """FD / FID / KID / precision-recall / density-coverage between n generated images and as many
    reference images, both quantised to 8 bits, on the chosen features; the result records N, the
    reference, the extractor (protocol and SHA-256), the quantisation and the versions."""
    from gankit.metrics.features import QUANTISATION, get_extractor, quantise

    gan = load_run(run_dir, device, member=member, truncation=truncation)
    if gan.spec.kind != "image":
        raise UsageError(f"metric '{metric}' needs an image dataset, not '{gan.spec.name}'")
    if metric == "fid":
        if features not in ("auto", "inception"):
            raise UsageError(f"metric 'fid' is defined on Inception features; for --features {features} use "
                             f"--metric fd")
        features = "inception"
    extractor = get_extractor(features, gan.cfg.dataset, classifier, gan.cfg.data_dir, gan.device)
    real_images, reference = reference_images(gan.cfg, n)
    torch.manual_seed(seed)
    fake = extractor(quantise(gan.spec.images(gan.sample(n).cpu())))
    real = extractor(quantise(real_images))
    try:
        out = _compare(metric, fake, real, seed, bootstrap)
    except ValueError as e:  # e.g. fewer samples than feature dimensions: say so in one line
        raise UsageError(f"metric '{metric}' on {extractor.protocol} features: {e}") from None
    size = f"{n // 1000}k" if n % 1000 == 0 else str(n)
    result = {**out, "protocol": f"{extractor.protocol}-{metric}{size}_{_short(gan.cfg.dataset)}",
              "n_generated": len(fake), "n_reference": len(real), "reference": reference,
              "features": extractor.record(), "quantisation": QUANTISATION, "seed": seed, "versions": versions()}
    if "test_accuracy" in extractor.extra:
        result["classifier_test_accuracy"] = extractor.extra["test_accuracy"]
    return result


def _compare(metric: str, fake, real, seed: int, bootstrap: int) -> dict:
    if metric in ("fd", "fid"):
        from gankit.metrics.frechet import frechet_bootstrap, frechet_distance, frechet_infinity

        out = {"value": frechet_distance(fake, real)}
        if bootstrap:
            out["bootstrap"] = frechet_bootstrap(fake, real, n_boot=bootstrap, seed=seed)
        try:
            out["fd_inf"] = frechet_infinity(fake, real, seed=seed)
        except ValueError as e:  # too few samples for several N above the feature dimension
            out["fd_inf"] = {"skipped": str(e)}
    elif metric == "kid":
        from gankit.metrics.kid import kernel_distance

        out = kernel_distance(fake, real, seed=seed)
    elif metric == "pr":
        from gankit.metrics.precision_recall import precision_recall

        out = precision_recall(real, fake)
    else:
        from gankit.metrics.precision_recall import density_coverage

        out = density_coverage(real, fake)
    return out


def format_result(metric: str, r: dict) -> str:
    if "ensemble" in r:  # a seed ensemble: each member, then mean ± std (min, max) of each number
        lines = [f"member {e}: {format_result(metric, row)}" for e, row in enumerate(r["members"])]
        lines += [f"ensemble {k}: {v['mean']:.4g} ± {v['std']:.4g} (min {v['min']:.4g}, max {v['max']:.4g})"
                  for k, v in r["ensemble"].items()]
        for row in r.get("sweep", {}).get("values", []):
            lines += [f"{r['sweep']['key']} {row['value']:g}: {k} {v['mean']:.4g} ± {v['std']:.4g}"
                      for k, v in row["metrics"].items()]
        return "\n".join(lines)
    if metric in ("fd", "fid"):
        text = f"{r['protocol']}: {r['value']:.4g}"
        if "bootstrap" in r:
            b = r["bootstrap"]
            text += f" ({b['level']:.0%} bootstrap interval {b['ci_low']:.4g} to {b['ci_high']:.4g})"
        if "fd_inf" in r["fd_inf"]:
            text += f", FD_inf {r['fd_inf']['fd_inf']:.4g}"
        return text + f"; N = {r['n_generated']} vs {r['reference']}; features {r['features']['protocol']}"
    if metric == "dc":
        return f"{r['protocol']}: density {r['density']:.3f}, coverage {r['coverage']:.3f} (k = {r['k']})"
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
    if metric == "conditional":
        return (f"{r['protocol']}: accuracy {r['accuracy']:.4f}, worst class {r['worst_class']} ({r['worst']:.4f}); "
                f"per class {', '.join(f'{v:.3f}' for v in r['per_class'])}"
                + (f"; FD per class {', '.join(f'{v:.2f}' for v in r['fd_per_class'])}" if "fd_per_class" in r else ""))
    if metric == "ssl-error":
        return f"test error {r['error']:.2%} ({r['n_test']} samples: {r['test']}; {r['labels']} labels)"
    if metric == "parzen":
        return (f"Parzen log-likelihood {r['mean']:.2f} ± {r['stderr']:.2f} nats (sigma {r['sigma']:.4g}, "
                f"{r['n_samples']} samples, {r['n_test']} test points)")
    return str(r)
