"""The remedy benchmark: each objective and stabiliser on the toy mixtures, several seeds each, modes covered
and high-quality fraction (2,500 samples, as in benchmarks/toy_modes.py; 100 per mode on grid100), and the
final JSD(p_data || p_g) and W1 that every 2-D toy run logs (its last logged row). On an MNIST-family image set
(`--datasets fashion-mnist`), the image configurations over the image defaults (or `--preset`), each trained for
`--epochs`: classes covered, FD, precision and recall of 10,000 samples against the test images on gankit's
shipped classifier (`gankit eval --metric classes|fd|pr`, FD without its bootstrap).

    python benchmarks/objectives.py [--seeds 3] [--datasets grid25] [--jobs 2] [--configs NAME,...] [--steps 6000]
    python benchmarks/objectives.py --seeds 10 --first-seed 3 ...   # seeds 3-9 added to the stored 0-2
    python benchmarks/objectives.py --datasets fashion-mnist --seeds 10 --epochs 3 [--preset dcgan-fashion-mnist]

Every run has the same length (--steps, 6,000 by default: the toy budget the README's tables use). Runs `--jobs`
trainings side by side, one torch thread each; prints a Markdown table. Each run, as it ends, is added to
benchmarks/results/objectives-DATASET.json (replacing an earlier run of the same configuration, seed and length), so
a grid can be run in parts, by several invocations at once on different datasets, or stopped midway.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _save import merge_results

CONFIGS = {  # name: config overrides over the toy defaults (as the CLI settles them: R1 0.1 in the logistic game)
    "logistic (no penalty)": {"r1": 0.0},
    "least-squares": {"objective": "least-squares"},
    "hinge": {"objective": "hinge"},
    "wgan-gp": {"objective": "wgan-gp", "k": 5},
    "wgan-clip": {"objective": "wgan-clip", "k": 5, "lr": 5e-5},
    "relativistic": {"objective": "relativistic"},
    "relativistic + R1 0.1": {"objective": "relativistic", "r1": 0.1},
    "logistic + R1 0.1 (default)": {},
    "logistic + spectral norm": {"r1": 0.0, "spectral_norm": True},
    "logistic + pack 2": {"r1": 0.0, "pack": 2},
    "hinge + spectral norm": {"objective": "hinge", "spectral_norm": True},
}
IMAGE_CONFIGS = {  # name: overrides over the image defaults (bn-mlp, Adam 2e-4, EMA) or over --preset
    "logistic (default)": {},
    "hinge": {"objective": "hinge"},
    "least-squares": {"objective": "least-squares"},
    "relativistic": {"objective": "relativistic"},
    "logistic + R1 0.1": {"r1": 0.1},
    "logistic + minibatch std": {"minibatch_std": True},
    "logistic + pack 2": {"pack": 2},
    "logistic + augment translation": {"augment": "translation"},
    "logistic + spectral norm": {"spectral_norm": True},
    "hinge + spectral norm": {"objective": "hinge", "spectral_norm": True},
    "wgan-gp": {"objective": "wgan-gp", "k": 5},
}


def image_scores(run: Path, n: int = 10_000, truncation: float | None = None, checkpoint: str = "last") -> dict:
    """Classes covered, FD, precision and recall of the run's G (`checkpoint`; z truncated to [-t, t] when
    `truncation` is t): n samples against the test images on the shipped classifier's features, as `gankit eval
    --metric classes|fd|pr` measures them (one draw of samples serves all four; the test images' features are
    computed once per process)."""
    import torch
    from gankit.metrics.classifier import class_coverage, get_classifier, predict
    from gankit.metrics.features import get_extractor, quantise
    from gankit.metrics.frechet import frechet_distance
    from gankit.metrics.precision_recall import precision_recall
    from gankit.evaluate import reference_images
    from gankit.sampling import load_run

    gan = load_run(run, "cpu", checkpoint=checkpoint, truncation=truncation)
    model, meta = get_classifier(gan.cfg.dataset, gan.cfg.data_dir)
    extractor = get_extractor("classifier", gan.cfg.dataset, None, gan.cfg.data_dir, "cpu")
    if gan.cfg.dataset not in _REAL:
        _REAL[gan.cfg.dataset] = extractor(quantise(reference_images(gan.cfg, n)[0]))
    torch.manual_seed(0)
    x = quantise(gan.spec.images(gan.sample(n).cpu()))
    fake, real = extractor(x), _REAL[gan.cfg.dataset]
    pr = precision_recall(real, fake)
    return {"classes": class_coverage(predict(model, x.reshape(-1, 784)), meta["test_histogram"])["classes_covered"],
            "fd": frechet_distance(fake, real), "precision": pr["precision"], "recall": pr["recall"]}


_REAL: dict = {}
RUN_KEY = ("config", "dataset", "seed", "steps", "epochs", "preset")  # what makes two runs the same run


def one(job: tuple[str, str, int, dict, str | None]) -> dict:
    name, dataset, seed, base, preset = job
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    from gankit import config as config_mod, rundir
    from gankit.train import train

    image = name in IMAGE_CONFIGS and dataset not in config_mod.MIXTURES
    run_id = {"config": name, "dataset": dataset, "seed": seed, "steps": base.get("steps"),
              "epochs": base.get("epochs"), "preset": preset}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        try:  # a configuration that does not settle, or diverges, is a row of the table too; the grid goes on
            cfg = config_mod.settle(base, {**(IMAGE_CONFIGS if image else CONFIGS)[name], "dataset": dataset,
                                           "seed": seed, "sample_every": 10**9, "checkpoint_every": 10**9, "threads": 1})
        except config_mod.ConfigError as e:
            return {**run_id, "error": f"config error: {e}"[:120]}
        run_id.update(steps=cfg.steps, epochs=cfg.epochs)
        try:
            summary = train(cfg, Path(tmp) / "run", progress=False)
        except Exception as e:  # noqa: BLE001
            return {**run_id, "error": str(e)[:120]}
        secs = time.perf_counter() - t
        if image:
            return {**run_id, **image_scores(Path(tmp) / "run"), "seconds": secs}
        last = [row for row in rundir.read_metrics(Path(tmp) / "run") if "jsd" in row][-1]
    mm = summary["modes"]
    return {**run_id, "modes": mm["modes_covered"], "n_modes": mm["n_modes"],
            "hq": mm["high_quality_fraction"], "jsd": last["jsd"], "w1": last["w1"], "seconds": secs}


def mean_std(values: list[float], digits: int = 3) -> str:
    m = sum(values) / len(values)
    s = (sum((v - m) ** 2 for v in values) / max(len(values) - 1, 1)) ** 0.5
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def table(results: list[dict], datasets: list[str], names: list[str], header: str, key: str, cells) -> None:
    """One Markdown row per (dataset, configuration) with runs: `cells(rows, ok)` fills it from the runs that finished
    (those with `key`); a configuration none of whose runs finished reads 'diverged'."""
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for d in datasets:
        for n in names:
            rows = [r for r in results if r["config"] == n and r["dataset"] == d]
            ok = [r for r in rows if key in r]
            if not rows:
                continue  # not run (--table over a partly run grid)
            failed = "config error" if all(r.get("error", "").startswith("config error") for r in rows) else "diverged"
            line = cells(rows, ok) if ok else f"{failed} | | | | | 0/{len(rows)}"
            print(f"| {d} | {n} | {line} |", flush=True)


def image_cells(rows: list[dict], ok: list[dict]) -> str:
    met = sum(r["recall"] >= 0.5 and r["precision"] >= 0.7 and r["fd"] <= 30 for r in ok)
    per_seed = " ".join(f"{r['fd']:.0f}" if "fd" in r else "x" for r in rows)
    return (f"{sum(r['classes'] for r in ok) / len(ok):.1f} ({min(r['classes'] for r in ok)}) | "
            f"{mean_std([r['fd'] for r in ok], 1)} | {mean_std([r['precision'] for r in ok])} | "
            f"{mean_std([r['recall'] for r in ok])} | {per_seed} | {met}/{len(rows)}")


def toy_cells(rows: list[dict], ok: list[dict]) -> str:
    full = sum(r["modes"] == r["n_modes"] and r["hq"] >= 0.9 for r in ok)
    per_seed = " ".join(str(r["modes"]) if "modes" in r else "x" for r in rows)
    return (f"{per_seed} | {sum(r['modes'] for r in ok) / len(ok):.1f} / {ok[0]['n_modes']} | "
            f"{100 * sum(r['hq'] for r in ok) / len(ok):.1f} % | {mean_std([r['jsd'] for r in ok])} | "
            f"{mean_std([r['w1'] for r in ok])} | {full}/{len(rows)}")


IMAGE_HEADER = ("| dataset | configuration | classes (min) | FD | precision | recall | FD per seed | seeds with recall "
                ">= 0.5, precision >= 0.7, FD <= 30 |")
TOY_HEADER = ("| dataset | configuration | modes per seed | mean modes | mean high-quality | final JSD | final W1 | "
              "seeds with all modes and >= 90 % HQ |")


def stored(datasets: list[str], image: bool, args) -> list[dict]:
    """The runs stored for `datasets` at this invocation's length (toys: --steps, any when 0; images: --epochs and
    --preset), seeds below --seeds, in seed order."""
    rows = []
    for d in datasets:
        path = Path(__file__).parent / "results" / f"objectives-{d}.json"
        rows += json.loads(path.read_text()) if path.exists() else []
    same = ((lambda r: r.get("epochs") == args.epochs and r.get("preset") == args.preset) if image
            else (lambda r: not args.steps or r.get("steps") == args.steps))
    return sorted((r for r in rows if same(r) and r["seed"] < args.seeds), key=lambda r: r["seed"])


def main(argv=None) -> int:
    from gankit.config import MIXTURES, PRESETS

    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0, help="train seeds --first-seed .. --seeds - 1 only (the "
                   "earlier ones stored by a previous invocation; the table reads every stored seed below --seeds)")
    p.add_argument("--datasets", default="grid25", help="toy mixtures, or one MNIST-family image set")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--configs", default=None, help="comma-separated names (default: every toy or image config)")
    p.add_argument("--steps", type=int, default=6000, help="every toy run's length, so the games compare at one "
                   "budget (0: as the CLI settles it, grid25's logistic runs 12,000)")
    p.add_argument("--epochs", type=float, default=3.0, help="every image run's length")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS), help="image runs: the preset under the configs")
    p.add_argument("--table", action="store_true", help="train nothing: print the table of the stored runs "
                   "(benchmarks/results/objectives-DATASET.json) of these configurations, seeds below --seeds, and "
                   "this length")
    args = p.parse_args(argv)
    datasets = args.datasets.split(",")
    image = [d not in MIXTURES for d in datasets]
    if any(image) and not all(image):
        p.error("--datasets takes toy mixtures or an image set, not both")
    configs = IMAGE_CONFIGS if image[0] else CONFIGS
    names = [n for n in configs if args.configs is None or n in args.configs.split(",")]
    if not names:
        p.error(f"no configuration named {args.configs!r}; known: {', '.join(configs)}")
    if image[0]:
        base = {**(PRESETS[args.preset] if args.preset else {}), "epochs": args.epochs}
    else:
        base = {"steps": args.steps} if args.steps else {}
    jobs = [(n, d, s, base, args.preset) for d in datasets for n in names for s in range(args.first_seed, args.seeds)]
    results = stored(datasets, image[0], args) if args.table or args.first_seed else []
    with ProcessPoolExecutor(args.jobs) as pool:
        for r in pool.map(one, [] if args.table else jobs):  # each run as it ends, so a long grid shows its progress
            results = [o for o in results if [o.get(k) for k in RUN_KEY] != [r.get(k) for k in RUN_KEY]] + [r]
            merge_results(f"objectives-{r['dataset']}", [r], RUN_KEY)
            done = (f"FD {r['fd']:.1f}, P {r['precision']:.3f}, R {r['recall']:.3f}, {r['classes']} classes"
                    if "fd" in r else f"{r['modes']}/{r['n_modes']} modes, {r['hq']:.1%} HQ" if "modes" in r else "")
            print(f"{r['dataset']} {r['config']} seed {r['seed']}: "
                  + (f"{done}, {r['seconds']:.0f} s" if done else r["error"]), file=sys.stderr, flush=True)
    results.sort(key=lambda r: r["seed"])
    if image[0]:
        table(results, datasets, names, IMAGE_HEADER, "fd", image_cells)
    else:
        table(results, datasets, names, TOY_HEADER, "modes", toy_cells)
    return 0


if __name__ == "__main__":
    sys.exit(main())
