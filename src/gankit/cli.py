"""Command line: argv -> Config -> library call. Nothing below this module reads argv.

Exit codes: 0 success (also after a graceful SIGINT/SIGTERM stop), 1 runtime failure (e.g. divergence),
2 bad input (options, config, missing data or run directory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from gankit import config as config_mod
from gankit.data.registry import IMAGES
from gankit.evaluate import METRICS
from gankit.registry import help_text
from gankit.errors import ConfigError, GankitError, NonFiniteError, UsageError

# `gankit train` has a flag for every config key (the run directory is --out), typed and explained by the
# Config's own fields; the choices named there come from the registries.
TRAIN_FLAGS = {key: typ for key, (typ, _) in config_mod.FIELD_TYPES.items() if key != "out"}


TRUNCATION_HELP = ("draw z from p_z restricted to [-T, T] per coordinate (the truncation trick: fidelity for variety; "
                   "default: no truncation)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gankit", description="Generative Adversarial Nets (Goodfellow et al., 2014)")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a GAN with Algorithm 1", argument_default=argparse.SUPPRESS)
    t.add_argument("--config", help="TOML file of config keys (flags override it)")
    t.add_argument("--preset", help=f"named configuration ({', '.join(config_mod.PRESETS)})")
    t.add_argument("--out", help="run directory (default runs/<dataset>-<time>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from checkpoints/last.pt")
    t.add_argument("--force", action="store_true", help="resume even if the config differs")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    for key, typ in TRAIN_FLAGS.items():
        if typ is bool:
            t.add_argument("--" + key.replace("_", "-"), dest=key, action=argparse.BooleanOptionalAction,
                           help=config_mod.help_of(key))
        else:
            t.add_argument("--" + key.replace("_", "-"), dest=key, type=typ, help=config_mod.help_of(key))

    s = sub.add_parser("sample", help="draw samples from a trained run")
    s.add_argument("run_dir")
    s.add_argument("--n", type=int, default=64, help="number of samples (rows x columns for figures)")
    s.add_argument("--out", required=True, help="output file: .png (picture) or .npy (array)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--class", dest="cls", type=int, default=None, metavar="C",
                   help="conditional runs: samples of class C (default: every class, one row each)")
    s.add_argument("--nearest", action="store_true", help="Figure 2: samples beside their nearest training image")
    s.add_argument("--interpolate", action="store_true", help="Figure 3: rows of linear interpolations in z")
    s.add_argument("--device", default="auto")
    s.add_argument("--member", type=int, default=None, help="which GAN of a seed ensemble (train --seeds N): 0..N-1")
    s.add_argument("--truncation", type=float, default=None, metavar="T",
                   help=TRUNCATION_HELP)

    e = sub.add_parser("eval", help="evaluate a trained run")
    e.add_argument("run_dir")
    e.add_argument("--metric", required=True, choices=list(METRICS), help=help_text(METRICS))
    e.add_argument("--n-samples", type=int, default=None)
    e.add_argument("--sigmas", default=None, help="comma-separated Parzen widths (default logspace(-1, 0, 10))")
    e.add_argument("--valid-size", type=int, default=1000)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.add_argument("--member", type=int, default=None,
                   help="which GAN of a seed ensemble (default: every member, and mean ± std over them)")
    e.add_argument("--device", default="auto")
    e.add_argument("--features", default="auto", choices=["auto", "classifier", "inception", "rand-conv"],
                   help="features for fd/kid/pr/dc: auto = gankit's shipped classifier for MNIST and Fashion-MNIST, "
                        "rand-conv (a fixed random network; not FID) for other images; inception = FID's network")
    e.add_argument("--classifier", default=None, metavar="PROTOCOL",
                   help="a retrained classifier's protocol (from `gankit classifier train`) instead of the shipped one")
    e.add_argument("--bootstrap", type=int, default=200, help="fd/fid: bootstrap resamples for the interval (0: none)")
    e.add_argument("--truncation", type=float, default=None, metavar="T",
                   help=TRUNCATION_HELP)

    c = sub.add_parser("classifier", help="retrain gankit's domain classifier (a new, differently named protocol)")
    c.add_argument("what", choices=["train"])
    c.add_argument("--dataset", required=True, choices=list(IMAGES), help="an MNIST-family dataset")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--epochs", type=int, default=8)
    c.add_argument("--data-dir", default=None)
    c.add_argument("--out", default=None, help="weights file (default: the per-user cache, named by its protocol)")
    c.add_argument("--no-progress", action="store_true")
    r = sub.add_parser("reproduce", help="reproduce one of the paper's results")
    r.add_argument("what", choices=["table1"])
    r.add_argument("--dataset", default="mnist", choices=list(IMAGES), help="an MNIST-family dataset")
    r.add_argument("--run", help="a finished run of the paper preset (default: train one now)")
    r.add_argument("--epochs", type=float, default=None, help="epochs when training (default: the preset's)")
    r.add_argument("--preset", default=None, help="preset to train when no --run is given (default paper-DATASET; "
                   "e.g. paper-mnist-code)")
    r.add_argument("--checkpoint", default="last", choices=["last", "best"],
                   help="the run's last checkpoint, or its best by the validation monitor (checkpoints/best.pt)")
    r.add_argument("--n-samples", type=int, default=10_000)
    r.add_argument("--kmeans-k", type=int, default=10_000)
    r.add_argument("--data-dir", default=None)
    r.add_argument("--out", default=None, help="directory for table1.md (default: the run directory)")
    r.add_argument("--no-progress", action="store_true")

    th = sub.add_parser("theory", help="the paper's propositions, computed and drawn")
    th.add_argument("what", choices=["check", "figure1", "ratio", "vanishing", "helvetica", "drs"])
    th.add_argument("--dataset", default="ring8", choices=["ring8", "grid25"])
    th.add_argument("--seed", type=int, default=0)
    th.add_argument("--json", action="store_true")
    th.add_argument("--out", default=None, help="output PNG (default: <what>.png)")
    th.add_argument("--run-dir", default=None, help="where to keep the run it trains (default: next to --out)")
    th.add_argument("--no-train", action="store_true", help="check: skip training discriminators")

    rp = sub.add_parser("report", help="one self-contained HTML page of one or more runs (compared)")
    rp.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    rp.add_argument("--out", default="report.html", help="output HTML file (default report.html)")
    rp.add_argument("--max-frames", type=int, default=60, help="sample pictures per run on the slider")

    v = sub.add_parser("vae", help="the maximum-likelihood contrast of Table 1: a VAE with the paper's MLP sizes")
    v.add_argument("what", choices=["train", "table1"])
    v.add_argument("dir", metavar="VAE_DIR", help="directory of the VAE (written by train, read by table1)")
    v.add_argument("--dataset", default="mnist", choices=list(IMAGES), help="an MNIST-family dataset")
    v.add_argument("--data-dir", default=None)
    v.add_argument("--epochs", type=float, default=20.0)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--k", type=int, default=1000, help="importance samples of the IWAE bound")
    v.add_argument("--n-bound", type=int, default=1000, help="test images the IWAE bound is computed on")
    v.add_argument("--no-progress", action="store_true")

    en = sub.add_parser("encode", help="learned inference: fit E predicting z from G(z), then encode images (a run "
                        "trained with --encoder uses its jointly trained E)")
    en.add_argument("run_dir")
    en.add_argument("--images", help="images to encode: FILE.npy (uint8 pixels, or floats in the run's range) or a "
                    "folder of PNGs (default: --n images of --split)")
    en.add_argument("--split", default="test", choices=config_mod.SPLITS,
                    help="split of the run's dataset to encode when no --images")
    en.add_argument("--n", type=int, default=64, help="images of --split to encode when no --images")
    en.add_argument("--out", help="output .npz: latents z, reconstructions G(z), per-image errors; a figure "
                    "beside it (.png)")
    en.add_argument("--refine", type=int, default=0, metavar="STEPS",
                    help="per image, Adam steps on ||G(z) - x||^2 from z = E(x) (0 = E alone)")
    en.add_argument("--refine-lr", type=float, default=0.05)
    en.add_argument("--encoder", help="an encoder file (default RUN/encoder.pt, fitted now if absent)")
    en.add_argument("--retrain", action="store_true", help="fit RUN/encoder.pt again")
    en.add_argument("--encoder-steps", type=int, default=1000, help="Adam steps fitting E on fresh G(z)")
    en.add_argument("--encoder-batch", type=int, default=128, help="z per encoder step")
    en.add_argument("--memorisation", type=int, default=0, metavar="N",
                    help="also compare reconstruction errors of N training and N test images (95%% intervals)")
    en.add_argument("--seed", type=int, default=0)
    en.add_argument("--json", action="store_true", help="print the measurements as JSON")
    en.add_argument("--device", default="auto")

    pr = sub.add_parser("probe", help="linear probe on D's features against raw pixels and a net from scratch")
    pr.add_argument("run_dir")
    pr.add_argument("--labels", type=int, required=True, help="labelled training images (balanced over classes)")
    pr.add_argument("--seeds", type=int, default=3, help="draws of the labelled set (mean ± std over them)")
    pr.add_argument("--l2", type=float, default=1e-2, help="L2 penalty of the logistic regressions")
    pr.add_argument("--scratch-steps", type=int, default=300, help="Adam steps training D's architecture from scratch")
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--device", default="auto")

    ip = sub.add_parser("inpaint", help="complete hidden pixels by searching z against the visible ones (a run trained "
                                        "with --inpaint: by G(z, c), given the visible ones)")
    ip.add_argument("run_dir")
    ip.add_argument("--mask", default="centre", choices=["left", "right", "top", "bottom", "centre", "random"],
                    help="the part hidden (random: each pixel with probability 1/2)")
    ip.add_argument("--images", help="FILE.npy or a folder of PNGs (default: --n images of --split)")
    ip.add_argument("--split", default="test", choices=config_mod.SPLITS)
    ip.add_argument("--n", type=int, default=16)
    ip.add_argument("--n-completions", type=int, default=4, help="random restarts = completions per image")
    ip.add_argument("--steps", type=int, default=300, help="Adam steps per restart on the visible pixels")
    ip.add_argument("--candidates", type=int, default=32, help="random z tried per restart before the descent")
    ip.add_argument("--out", default="inpaint.png", help="figure: masked input, completions, original (.png)")
    ip.add_argument("--seed", type=int, default=0)
    ip.add_argument("--json", action="store_true")
    ip.add_argument("--device", default="auto")
    return p


def settle_config(args: dict, base: config_mod.Config | None = None) -> config_mod.Config:
    """(Dataset defaults or a resumed run's saved config) < preset < TOML file < flags, validated into one
    Config: the same path for fresh and resumed runs."""
    preset = config_mod.preset(args["preset"]) if args.get("preset") else {}
    file = config_mod.read_toml(args["config"]) if args.get("config") else {}
    flags = {k: v for k, v in args.items() if k in TRAIN_FLAGS}
    if "steps" in flags and "epochs" in flags:
        raise ConfigError("give --steps or --epochs, not both")
    if "out" in args:
        flags["out"] = args["out"]
    return config_mod.settle(preset, file, flags, base=base)


def cmd_train(args: dict) -> int:
    from gankit.device import init_distributed

    rank, world = init_distributed(args.get("device", "auto"))
    try:
        return _train_in_group(args, rank, world)
    finally:  # every rank leaves the group it joined (how the process then exits: `entry`)
        if world > 1:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train_in_group(args: dict, rank: int, world: int) -> int:
    from gankit import rundir
    from gankit.train import train

    if "resume" in args:
        run_dir = Path(args["resume"])
        if "out" in args and Path(args["out"]) != run_dir:
            raise UsageError("--out cannot move a resumed run; it stays in the --resume directory")
        cfg = settle_config(args, base=rundir.read_config(run_dir))
    else:
        cfg = settle_config(args)
        run_dir = Path(cfg.out) if cfg.out else rundir.default_path(cfg)
        if world > 1:  # every process must use rank 0's choice
            import torch.distributed as dist

            chosen = [str(run_dir)]
            dist.broadcast_object_list(chosen, src=0)
            run_dir = Path(chosen[0])
    cfg.out = str(run_dir)
    if rank == 0:
        print(f"gankit: run directory {run_dir}" + (f" ({world} processes)" if world > 1 else ""), file=sys.stderr)
    summary = train(cfg, run_dir, resume="resume" in args, force=args.get("force", False),
                    progress=not args.get("no_progress", False))
    if rank != 0:
        return 0
    if summary["interrupted"]:
        print(f"gankit: stopped at step {summary['step']}; checkpoint saved. Resume with: gankit train --resume "
              f"{run_dir}", file=sys.stderr)
    else:
        line = f"gankit: done, {summary['step']} steps in {summary['seconds']:.1f} s"
        if "modes" in summary:
            mm = summary["modes"]
            line += (f"; modes covered {mm['modes_covered']}/{mm['n_modes']}, "
                     f"high-quality {mm['high_quality_fraction']:.1%}")
        if "class_on_mode" in summary:
            line += f"; samples of class c on mode c {summary['class_on_mode']['accuracy']:.1%}"
        if "encoder" in summary:
            line += f"; R^2 of E(G(z)) against z {summary['encoder']['r2']:.3f}"
        if "ensemble" in summary:
            from gankit.ensemble import summary_line

            line += summary_line(summary)
        print(line, file=sys.stderr)
    print(f"gankit: run directory {run_dir}", file=sys.stderr)
    return 0


def _in_range(args: dict, key: str, lo, hi) -> None:
    """UsageError naming the option when args[key] (if given) is outside [lo, hi]."""
    v = args.get(key)
    if v is not None and not lo <= v <= hi:
        raise UsageError(f"--{key.replace('_', '-')} must be in [{lo:g}, {hi:g}], got {v!r}")


def _output(path: str, suffixes: tuple[str, ...]) -> Path:
    """An output file whose suffix we write and whose directory exists."""
    out = Path(path)
    if out.suffix not in suffixes:
        raise UsageError(f"--out must end in {' or '.join(suffixes)}, got '{out.name}'")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist")
    return out


SEEDS = (0, 2**32 - 1)


def cmd_sample(args: dict) -> int:
    from gankit import sampling
    from gankit.errors import on_disk

    out = _output(args["out"], (".png", ".npy"))
    _in_range(args, "n", 1, 10**6)
    _in_range(args, "seed", *SEEDS)
    gan = sampling.load_run(args["run_dir"], args["device"], member=args["member"], truncation=args["truncation"])
    with on_disk("write", out):
        _check_class(gan, args["cls"], args["run_dir"])
        if args["nearest"]:
            sampling.figure_nearest(gan, out, n=args["n"], seed=args["seed"], c=args["cls"])
        elif args["interpolate"]:
            sampling.figure_interpolate(gan, out, rows=args["n"], seed=args["seed"], c=args["cls"])
        else:
            sampling.save_samples(gan, out, args["n"], args["seed"], c=args["cls"])
    print(f"gankit: wrote {out}", file=sys.stderr)
    return 0


def _check_class(gan, cls: int | None, run_dir: str) -> None:
    """--class only for a conditional run, and one of its classes."""
    if cls is None:
        return
    if not gan.n_classes:
        raise UsageError(f"--class: {run_dir} is not a conditional run (it was trained without --conditional)")
    if not 0 <= cls < gan.n_classes:
        raise UsageError(f"--class {cls} is out of range: {run_dir} has {gan.n_classes} classes (0 to "
                         f"{gan.n_classes - 1})")


def _sigmas(text: str | None) -> list[float] | None:
    """--sigmas as a list of Parzen widths, each a number in [1e-6, 1e6]."""
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--sigmas must be comma-separated numbers, got {text!r}") from None
    if not values or not all(1e-6 <= v <= 1e6 for v in values):
        raise UsageError(f"--sigmas must be widths in [1e-06, 1e+06], got {text!r}")
    return values


def cmd_eval(args: dict) -> int:
    from gankit import evaluate

    _in_range(args, "n_samples", 2, 10**6)
    _in_range(args, "valid_size", 1, 10**5)
    _in_range(args, "seed", *SEEDS)
    _in_range(args, "bootstrap", 0, 100_000)
    result = evaluate.run_metric(args["run_dir"], args["metric"], n_samples=args["n_samples"], seed=args["seed"],
                                 sigmas=_sigmas(args["sigmas"]), valid_size=args["valid_size"], device=args["device"],
                                 features=args["features"], classifier=args["classifier"], bootstrap=args["bootstrap"],
                                 member=args["member"], truncation=args["truncation"])
    if args["json"]:
        print(json.dumps(result, indent=2))
    else:
        print(evaluate.format_result(args["metric"], result))
    return 0


def cmd_classifier(args: dict) -> int:
    from gankit.metrics.classifier import retrain

    _in_range(args, "seed", *SEEDS)
    _in_range(args, "epochs", 1, 1000)
    meta = retrain(args["dataset"], args["data_dir"], seed=args["seed"], epochs=args["epochs"],
                   progress=not args["no_progress"], out=args["out"])
    print(f"{meta['protocol']}: test accuracy {meta['test_accuracy']:.4f}, sha256 {meta['sha256']}")
    print(f"gankit: wrote {meta['path']}; use it with `gankit eval RUN --metric fd --classifier {meta['protocol']}`",
          file=sys.stderr)
    return 0


def cmd_reproduce(args: dict) -> int:
    from gankit import rundir
    from gankit.reproduce import table1
    from gankit.train import train

    for key, lo, hi in (("n_samples", 2, 10**6), ("kmeans_k", 1, 10**6), ("epochs", 1e-6, 1e6)):
        _in_range(args, key, lo, hi)
    run = args["run"]
    if run is None:
        name = args["preset"] or f"paper-{args['dataset']}"
        values = {**config_mod.preset(name), "dataset": args["dataset"], "data_dir": args["data_dir"]}
        if args["epochs"] is not None:
            values["epochs"] = args["epochs"]
        cfg = config_mod.settle(values)
        run = str(rundir.default_path(cfg))
        cfg.out = run
        print(f"gankit: training the paper preset into {run}", file=sys.stderr)
        train(cfg, run, progress=not args["no_progress"])
    rows = table1(args["dataset"], run, args["out"], n_samples=args["n_samples"], kmeans_k=args["kmeans_k"],
                  data_dir=args["data_dir"], progress=not args["no_progress"], checkpoint=args["checkpoint"])
    for name, r in rows.items():
        print(f"{name:40s} {r['mean']:8.1f} ± {r['stderr']:.1f}  (sigma {r['sigma']:.3f})")
    print(f"gankit: wrote {Path(args['out'] or run) / 'table1.md'}", file=sys.stderr)
    return 0


def cmd_theory(args: dict) -> int:
    from gankit import theory

    _in_range(args, "seed", *SEEDS)
    if args["out"] is not None:
        _output(args["out"], (".png",))
    if args["what"] == "check":
        rows = theory.check(train_d=not args["no_train"])
        if args["json"]:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'pair':26s} {'C(G)':>10s} {'-log4+2JSD':>11s} {'|error|':>9s} {'mean|D-D*|':>11s} {'max|D-D*|':>10s} "
              f"{'MAE log ratio':>14s}")
        for r in rows:
            extra = (f" {r['D_vs_Dstar_mean']:11.4f} {r['D_vs_Dstar_max']:10.4f} {r['log_ratio_mae']:14.4f}"
                     if "D_vs_Dstar_mean" in r else "")
            print(f"{r['pair']:26s} {r['C(G)']:10.6f} {r['-log4+2JSD']:11.6f} {r['identity_error']:9.1e}{extra}")
        print(f"\n{'pair':26s} {'objective':14s} {'criterion at D*':>16s} {'divergence':>11s} {'|error|':>9s}  (divergence)")
        for r in rows:
            for obj in ("least-squares", "hinge", "wasserstein"):
                if f"{obj}: error" in r:
                    name = next(k.split(": ", 1)[1] for k in r if k.startswith(f"{obj}: ")
                                and k not in (f"{obj}: criterion", f"{obj}: error"))
                    print(f"{r['pair']:26s} {obj:14s} {r[f'{obj}: criterion']:16.6f} {r[f'{obj}: {name}']:11.6f} "
                          f"{r[f'{obj}: error']:9.1e}  ({name})")
        return 0
    from gankit import failures

    out = Path(args["out"] or f"{args['what']}.png")
    run_dir = Path(args["run_dir"]) if args["run_dir"] else out.with_name(out.stem + "-run")
    progress = not args["json"]
    if args["what"] == "figure1":
        result = theory.figure1(out, run_dir)
        lines = [f"step {p['step']:5d}: mean |D - 1/2| {p['mean_abs_D_minus_half']:.3f}, G(z) mean {p['g_mean']:.3f} "
                 f"std {p['g_std']:.3f} (data: 2.0, 0.5)" for p in result]
    elif args["what"] == "ratio":
        result = theory.ratio_figure(out, args["seed"])
        lines = [f"{r['pair']:26s} mean |D - D*| {r['grid_mean']:.4f}, max {r['grid_max']:.4f}; MAE of log ratio "
                 f"{r['log_ratio_mae']:.4f}" for r in result]
    elif args["what"] == "vanishing":
        result, disjoint = failures.run_vanishing(out, args["dataset"], seed=args["seed"])
        lines = [f"{'step':>4s} {'|grad| minimax':>15s} {'D(G(z))':>8s} {'|grad| non-sat.':>16s} {'D(G(z))':>8s}"]
        lines += [f"{r['step']:4d} {r['minimax: |grad| minimax']:15.4g} {r['minimax: D(G(z))']:8.4f} "
                  f"{r['nonsaturating: |grad| nonsaturating']:16.4g} {r['nonsaturating: D(G(z))']:8.4f}"
                  for r in result if r["step"] in (0, 1, 2, 5, 10, 20, 30, 40, 59)]
        lines += ["", "disjoint supports (Arjovsky & Bottou 2017): p_data = N(0, 0.05^2), G(z) = 3 + 0.05 z",
                  f"{'D steps':>7s} {'JSD >=':>7s} {'|grad| minimax':>15s} {'|grad| non-sat.':>16s} {'|grad| WGAN-GP':>15s}"]
        lines += [f"{r['d_steps']:7d} {r['jsd_lower_bound']:7.4f} {r['|grad| minimax']:15.4g} "
                  f"{r['|grad| nonsaturating']:16.4g} {r['|grad| wasserstein']:15.4g}" for r in disjoint]
        result = {"g_steps": result, "disjoint": disjoint}
    elif args["what"] == "helvetica":
        result = failures.run_helvetica(out, run_dir, args["dataset"], seed=args["seed"], progress=progress)
        lines = [f"G step {r['step']:5d} (D frozen): modes covered {r['modes_covered']:2d}, high quality "
                 f"{r['high_quality']:.1%}, diversity {r['diversity']:.3f}" for r in result]
    else:
        result = failures.run_rejection(out, run_dir, args["dataset"], seed=args["seed"], progress=progress)
        lines = [f"{name:26s} modes {r['modes_covered']}/{r['n_modes']}, high quality {r['high_quality_fraction']:.1%}, "
                 f"KL to uniform {r['kl_to_uniform']:.3f}" for name, r in result.items() if isinstance(r, dict)]
        lines.append(f"acceptance rate {result['acceptance_rate']:.1%} (gamma {result['gamma']:.3f})")
    if args["json"]:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(lines))
    print(f"gankit: wrote {out}", file=sys.stderr)
    return 0


def cmd_report(args: dict) -> int:
    from gankit.report import write_report

    out = _output(args["out"], (".html", ".htm"))
    _in_range(args, "max_frames", 1, 10_000)
    write_report(args["run_dirs"], out, max_frames=args["max_frames"])
    print(f"gankit: wrote {out}", file=sys.stderr)
    return 0


def cmd_vae(args: dict) -> int:
    from gankit import vae

    if args["what"] == "train":
        _in_range(args, "epochs", 1e-3, 1e4)
        vae.train(vae.VAEConfig(dataset=args["dataset"], data_dir=args["data_dir"], epochs=args["epochs"],
                                seed=args["seed"]), args["dir"], progress=not args["no_progress"])
        print(f"gankit: wrote {Path(args['dir']) / 'vae.pt'}", file=sys.stderr)
        return 0
    _in_range(args, "k", 1, 10**6)
    _in_range(args, "n_bound", 1, 10**5)
    model, cfg = vae.load(args["dir"])
    rows = vae.table1_rows(model, cfg, n_bound=args["n_bound"], k=args["k"], seed=args["seed"])
    p, b = rows["parzen"], rows["iwae"]
    lines = ["| VAE (paper's MLP sizes, ELBO) | nats |", "|---|---|",
             f"| Parzen estimate (Table 1 protocol, sigma {p['sigma']:.3f}) | {p['mean']:.0f} ± {p['stderr']:.1f} |",
             f"| IWAE bound, k = {b['k']:,}, first {b['n']:,} test images dequantised | {b['mean']:.0f} ± {b['stderr']:.1f} |"]
    (Path(args["dir"]) / "table1.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def _unconditional_run(args: dict):
    """The run for encode / probe / inpaint, which search or read G(z) and D(x) without class labels."""
    from gankit import sampling

    gan = sampling.load_run(args["run_dir"], args["device"])
    if gan.n_classes:
        raise UsageError(f"gankit {args['command']} works on unconditional runs; {args['run_dir']} is conditional")
    if gan.context_dim and args["command"] != "inpaint":  # an inpainting run's G needs the visible pixels
        raise UsageError(f"gankit {args['command']} works on unconditional runs; {args['run_dir']} was trained with "
                         f"--inpaint (G completes given pixels)")
    return gan


def _images(args: dict, gan):
    """--images FILE|FOLDER, or --n random images of --split of the run's dataset."""
    from gankit import inference

    if args["images"] is not None:
        return inference.read_images(args["images"], gan.spec)
    if gan.spec.kind != "image":
        raise UsageError("give --images FILE.npy (points) for a toy run")
    return inference.split_images(gan, args["split"], args["n"], args["seed"])


def cmd_encode(args: dict) -> int:
    import numpy as np

    from gankit import inference
    from gankit.errors import on_disk

    for key, lo, hi in (("n", 1, 10**6), ("refine", 0, 10**6), ("encoder_steps", 1, 10**7), ("encoder_batch", 1, 10**5),
                        ("memorisation", 0, 10**5), ("refine_lr", 1e-8, 1e3), ("seed", *SEEDS)):
        _in_range(args, key, lo, hi)
    out = _output(args["out"], (".npz",)) if args["out"] else None
    if out is None and not args["memorisation"]:
        raise UsageError("give --out FILE.npz (and --images), or --memorisation N")
    gan = _unconditional_run(args)
    x = _images(args, gan) if out is not None else None
    log = (lambda m: print(m, file=sys.stderr))
    enc = inference.encoder_for(gan, args["run_dir"], args["encoder"], args["retrain"], log=log,
                                steps=args["encoder_steps"], batch_size=args["encoder_batch"], seed=args["seed"])
    kind = "jointly trained" if enc.info.get("jointly_trained") else "post-hoc"
    result = {"encoder": kind, "encoder_r2": enc.info.get("r2")}
    if out is not None:
        z, recon, err = inference.encode(gan, enc, x, args["refine"], args["refine_lr"])
        fig = out.with_suffix(".png")
        with on_disk("write", out):
            np.savez(out, z=z.numpy(), reconstructions=recon.numpy(), images=x.numpy(), errors=err.numpy())
            inference.figure_encode(gan, x, recon, fig)
        result |= {"n": len(x), "refine": args["refine"], "reconstruction_mse": float(err.mean())}
        print(f"gankit: wrote {out} and {fig}", file=sys.stderr)
    if args["memorisation"]:
        result["memorisation"] = inference.memorisation(gan, enc, args["memorisation"], args["refine"], args["seed"])
    if args["json"]:
        print(json.dumps(result, indent=2))
        return 0
    print(f"R^2 of E(G(z)) against z ({kind} encoder): {result['encoder_r2']:.4f}")
    if out is not None:
        print(f"reconstruction MSE of {result['n']} images (refine {args['refine']}): {result['reconstruction_mse']:.5f}")
    if "memorisation" in result:
        m = result["memorisation"]
        print(f"memorisation test ({m['n']} + {m['n']} images): train MSE {m['train_error']:.5f}, test MSE "
              f"{m['test_error']:.5f}, difference {m['difference']:+.5f}, 95% t-interval [{m['t_interval'][0]:+.5f}, "
              f"{m['t_interval'][1]:+.5f}], bootstrap [{m['bootstrap_interval'][0]:+.5f}, "
              f"{m['bootstrap_interval'][1]:+.5f}]")
    return 0


def cmd_probe(args: dict) -> int:
    from gankit import probe

    _in_range(args, "labels", 1, 10**6)
    _in_range(args, "seeds", 1, 1000)
    _in_range(args, "l2", 0, 1e6)
    _in_range(args, "scratch_steps", 1, 10**6)
    gan = _unconditional_run(args)
    log = None if args["json"] else (lambda m: print(m, file=sys.stderr))
    r = probe.probe(gan, args["labels"], args["seeds"], l2=args["l2"], scratch_steps=args["scratch_steps"], log=log)
    if args["json"]:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{gan.cfg.dataset}, {r['n_labels']} labels, {r['seeds']} seeds, {r['n_test']} test images")
    for m in probe.METHODS:
        print(f"{m:16s} test accuracy {r[m]['mean']:.2%} ± {r[m]['std']:.2%}")
    return 0


def cmd_inpaint(args: dict) -> int:
    from gankit import inpaint
    from gankit.errors import on_disk

    out = _output(args["out"], (".png",))
    for key, lo, hi in (("n", 1, 10**5), ("n_completions", 1, 100), ("steps", 0, 10**6), ("candidates", 1, 10**4),
                        ("seed", *SEEDS)):
        _in_range(args, key, lo, hi)
    gan = _unconditional_run(args)
    if gan.spec.kind != "image":
        raise UsageError("inpaint completes images; this run's dataset is a toy (points have no pixels to hide)")
    if gan.context_dim and args["mask"] not in config_mod.inpaint_masks(gan.cfg.inpaint):
        print(f"gankit: warning: this run was trained on masks {gan.cfg.inpaint}, not {args['mask']}", file=sys.stderr)
    x = _images(args, gan)
    r = inpaint.inpaint(gan, x, args["mask"], args["n_completions"], args["steps"], candidates=args["candidates"],
                        seed=args["seed"])
    with on_disk("write", out):
        inpaint.figure_inpaint(gan, x, r, out)
    keys = ("mask", "method", "n", "k", "mse_hidden", "mse_hidden_best_fit", "mse_hidden_average_completion",
            "mse_hidden_mean_image")
    if args["json"]:
        print(json.dumps({k: r[k] for k in keys}, indent=2))
    else:
        print(f"mask {r['mask']}, {r['n']} images x {r['k']} completions: hidden-pixel MSE {r['mse_hidden']:.5f} "
              f"(best visible fit {r['mse_hidden_best_fit']:.5f}, average of the completions "
              f"{r['mse_hidden_average_completion']:.5f}); mean-image baseline {r['mse_hidden_mean_image']:.5f}")
    print(f"gankit: wrote {out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = vars(_parser().parse_args(argv))
    commands = {"train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "reproduce": cmd_reproduce,
                "theory": cmd_theory, "report": cmd_report, "vae": cmd_vae, "classifier": cmd_classifier,
                "encode": cmd_encode, "probe": cmd_probe, "inpaint": cmd_inpaint}
    try:
        return commands[args["command"]](args)
    except NonFiniteError as e:  # a run that diverged: a runtime failure, said in one line
        print(f"gankit: error: {e}", file=sys.stderr)
        return 1
    except GankitError as e:  # bad input; anything else is a bug and keeps its traceback
        print(f"gankit: error: {e}", file=sys.stderr)
        return 2


def entry() -> None:
    """The `gankit` process: main(), then exit with its code. A rank under torchrun leaves without interpreter
    finalization (its files are written and closed by then): torch's gloo threads can abort a process that
    finished correctly while the interpreter tears down (pytorch/pytorch#179291), which fails the whole launch."""
    from gankit.device import launched_world

    code = main()
    if launched_world() > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
