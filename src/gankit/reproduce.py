"""`gankit reproduce table1`: the paper's Table 1 (Parzen-window log-likelihood), with reference rows.

Our row comes from a trained paper-preset run; two reference rows show what the metric rewards:
held-out real training images used as the "samples", and k-means centroids of the training set
(Theis et al. 2016 showed such centroids can outscore GANs on this metric).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gankit.errors import UsageError
from gankit.data import load_dataset
from gankit.metrics.parzen import DEFAULT_SIGMAS, parzen_protocol

# Goodfellow et al. (2014), Table 1 (MNIST column): mean log-likelihood +/- standard error.
PAPER_ROWS = {
    "mnist": [("DBN [3]", "138 ± 2"), ("Stacked CAE [3]", "121 ± 1.6"), ("Deep GSN [5]", "214 ± 1.1"),
              ("Adversarial nets (paper)", "225 ± 2")],
}


def kmeans(x: torch.Tensor, k: int, iters: int = 10, seed: int = 0, progress: bool = True) -> torch.Tensor:
    """Lloyd's k-means, initialised from k random points; distances by matrix products, chunked."""
    g = torch.Generator().manual_seed(seed)
    centres = x[torch.randperm(len(x), generator=g)[:k]].clone()
    for _ in tqdm(range(iters), desc="k-means", disable=not progress, leave=False):
        c_sq = (centres * centres).sum(1)
        assign = torch.cat([torch.addmm(c_sq[None], x[i:i + 4096], centres.T, alpha=-2.0).argmin(1)
                            for i in range(0, len(x), 4096)])
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]  # empty clusters keep their centre
    return centres


def table1(dataset: str, run_dir: str | Path, out: str | Path | None = None, n_samples: int = 10_000,
           kmeans_k: int = 10_000, kmeans_iters: int = 10, valid_size: int = 1000, seed: int = 0,
           data_dir: str | None = None, progress: bool = True, checkpoint: str = "last") -> dict:
    """Compute the rows and write table1.md (in `out`, default the run directory); returns the rows. `checkpoint`:
    'last', or 'best' (the run's best by its validation monitor)."""
    from gankit.sampling import load_run

    gan = load_run(run_dir, checkpoint=checkpoint)
    if gan.cfg.dataset != dataset:
        raise UsageError(f"run {run_dir} was trained on '{gan.cfg.dataset}', not '{dataset}'")
    data_dir = data_dir or gan.cfg.data_dir
    train = load_dataset(dataset, "train", data_dir, None, gan.cfg.pixel_range).x
    valid = load_dataset(dataset, "valid", data_dir, None, gan.cfg.pixel_range).x[:valid_size]
    test = load_dataset(dataset, "test", data_dir, None, gan.cfg.pixel_range).x
    torch.manual_seed(seed)
    rows = {}
    t = time.perf_counter()
    rows[f"gankit GAN (this run, {checkpoint} checkpoint, step {gan.step})"] = parzen_protocol(gan.sample(n_samples).cpu(), valid, test, DEFAULT_SIGMAS)
    g = torch.Generator().manual_seed(seed)
    real = train[torch.randperm(len(train), generator=g)[:n_samples]]
    rows[f"{len(real):,} real training images"] = parzen_protocol(real, valid, test, DEFAULT_SIGMAS)
    k = min(kmeans_k, len(train))
    centres = kmeans(train, k, kmeans_iters, seed, progress)
    rows[f"k-means centroids (k = {k:,})"] = parzen_protocol(centres, valid, test, DEFAULT_SIGMAS)
    seconds = time.perf_counter() - t

    lines = [f"# Table 1: Parzen window-based log-likelihood estimates, {dataset}", "",
             f"Test set: {len(test):,} images; sigma chosen on validation images 50,000-{50_000 + len(valid) - 1:,} "
             f"from logspace(-1, 0, 10); mean ± standard error in nats; {n_samples:,} samples per model.", "",
             "| Model | Log-likelihood | sigma | source |", "|---|---|---|---|"]
    for name, value in PAPER_ROWS.get(dataset, []):
        lines.append(f"| {name} | {value} | | Goodfellow et al. 2014, MNIST |")
    for name, r in rows.items():
        lines.append(f"| {name} | {r['mean']:.0f} ± {r['stderr']:.1f} | {r['sigma']:.3f} | gankit, run {run_dir} |")
    lines += ["", f"Run: {gan.cfg.dataset}, model {gan.cfg.model}, computed in {seconds:.0f} s. The reference "
              "rows show what the metric rewards: real images and cluster centres are not a generative model "
              "that beats the GAN, yet score comparably or higher (Theis et al. 2016)."]
    out = Path(out) if out else Path(run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table1.md").write_text("\n".join(lines) + "\n")
    return rows
