"""The training loop: Algorithm 1 of Goodfellow et al. (2014), for every model and dataset.

    for each iteration:
        for k steps:  sample m noise z and m real x; ascend V(D, G) by a step on D
        sample m noise z; descend the generator loss by a step on G

`update = "simultaneous"` instead takes D's and G's gradients from one shared minibatch and applies
them together, as the paper's original code did. Randomness comes from the seeded torch RNG and
the data order from (seed, epoch), so a run is reproducible and resumes bit-exactly.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gankit import checkpoint, losses, optim, rundir
from gankit.config import Config, diff
from gankit.data import Data, load_dataset
from gankit.metrics.collapse import CollapseMonitor
from gankit.metrics.modes import mode_metrics
from gankit.models import build_models, has_batchnorm
from gankit.noise import sample_noise
from gankit.plots import plot_losses, plot_samples
from gankit.precision import DTYPES, Working

LOGGED = ("d_loss", "g_loss", "d_real", "d_fake", "value")
N_FIXED = 100  # fixed-noise samples drawn for the pictures (2,500 for toys)


class NonFiniteError(RuntimeError):
    """A loss or parameter became NaN/inf; the message names the step and the quantity."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available; under torchrun each process takes the GPU of its LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", torch.cuda.current_device())))
    return torch.device(name)


def init_distributed(device_name: str) -> tuple[int, int]:
    """Join the process group torchrun describes in the environment (gloo on CPU, NCCL on GPU)."""
    dist = torch.distributed
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    device = resolve_device(device_name)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


class RealBatches:
    """Minibatches of real data by index: batch b of the run is a slice of the permutation of its epoch.

    With `world` processes the global batch of m*world is split into disjoint shards by `rank`.
    """

    def __init__(self, x: torch.Tensor, m: int, seed: int, rank: int = 0, world: int = 1):
        if len(x) < m * world:
            raise ValueError(f"dataset has {len(x)} samples, fewer than one batch of {m * world}")
        self.x, self.m, self.seed, self.rank, self.world = x, m, seed, rank, world
        self.per_epoch = len(x) // (m * world)
        self._epoch, self._perm = -1, None

    def epoch_of(self, b: int) -> float:
        return b / self.per_epoch

    def __call__(self, b: int) -> torch.Tensor:
        epoch, i = divmod(b, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(len(self.x), generator=g).to(self.x.device)
            self._epoch = epoch
        start = (i * self.world + self.rank) * self.m
        return self.x.index_select(0, self._perm[start:start + self.m])


@dataclass
class GAN:
    """A generator/discriminator pair with what is needed to use it."""

    G: torch.nn.Module
    D: torch.nn.Module
    cfg: Config
    data: Data
    device: torch.device
    G_ema: torch.nn.Module | None = None  # moving average of G's weights, when cfg.ema > 0

    @torch.no_grad()
    def sample(self, n: int, z: torch.Tensor | None = None, batch: int = 10_000) -> torch.Tensor:
        """n samples G(z) (eval mode; from the averaged G when there is one), z ~ p_z unless given."""
        G = self.G_ema if self.G_ema is not None else self.G
        G.eval()
        if z is None:
            z = sample_noise(n, self.cfg.z_dim, self.cfg.noise, self.device)
        out = torch.cat([G(z[i:i + batch].to(self.device)).float() for i in range(0, len(z), batch)])
        G.train()
        return out

    @torch.no_grad()
    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D(x) in [0, 1] (eval mode: no dropout)."""
        self.D.eval()
        out = torch.sigmoid(self.D(x.to(self.device).float()))
        self.D.train()
        return out


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta; buffers are copied."""
    torch._foreach_lerp_(list(G_ema.parameters()), list(G.parameters()), 1.0 - decay)
    buffers = list(G_ema.buffers())
    if buffers:
        torch._foreach_copy_(buffers, list(G.buffers()))


def fixed_noise(cfg: Config, n: int, device: torch.device) -> torch.Tensor:
    """The same z for every picture of a run, drawn from its own generator so it disturbs nothing."""
    return sample_noise(n, cfg.z_dim, cfg.noise, "cpu", torch.Generator().manual_seed(cfg.seed + 7919)).to(device)


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _check_finite(step: int, values: dict, modules: dict) -> None:
    for name, v in values.items():
        if not math.isfinite(v):
            raise NonFiniteError(f"step {step}: {name} is {v}; training diverged. The last good checkpoint is kept; "
                                 f"try a lower --lr")
    for mname, module in modules.items():
        for pname, p in module.named_parameters():
            if not torch.isfinite(p).all():
                raise NonFiniteError(f"step {step}: parameter {mname}.{pname} is not finite; training diverged. "
                                     f"The last good checkpoint is kept; try a lower --lr")


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked after each step, so a step is never cut in half."""

    def __init__(self):
        self.signum = None

    def __enter__(self):
        self._old = {}
        with contextlib.suppress(ValueError):  # not the main thread: no handlers
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)


def build(cfg: Config, data: Data | None = None, device: torch.device | None = None) -> GAN:
    """Seed, load the data and make the models on the device."""
    device = device or resolve_device(cfg.device)
    if data is None:
        data = load_dataset(cfg.dataset, cfg.split, cfg.data_dir, cfg.subset, cfg.pixel_range,
                            image_size=cfg.image_size)
    torch.manual_seed(cfg.seed)
    G, D = build_models(cfg, data)
    G_ema = copy.deepcopy(G).requires_grad_(False).to(device) if cfg.ema > 0 else None
    return GAN(G.to(device), D.to(device), cfg, data, device, G_ema)


def train(cfg: Config, run_dir: str | Path, resume: bool = False, force: bool = False, progress: bool = True,
          data: Data | None = None) -> dict:
    """Train per `cfg` into `run_dir` (created, or continued when `resume`); returns the summary.

    Under torch.distributed (e.g. torchrun) every process trains a replica on its own shard of each
    batch; `cfg.batch_size` is the per-process m.
    """
    return fit(cfg, run_dir, resume, force, progress, data)[1]


def fit(cfg: Config, run_dir: str | Path, resume: bool = False, force: bool = False, progress: bool = True,
        data: Data | None = None) -> tuple[GAN, dict]:
    """`train`, also returning the trained GAN."""
    dist = torch.distributed
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    run_dir = Path(run_dir)
    device = resolve_device(cfg.device)
    if resume:
        saved = rundir.read_config(run_dir)
        differing = diff(saved, cfg, ignore=("out", "steps", "epochs", "device"))
        if differing and not force:
            raise rundir.RunDirError(f"cannot resume {run_dir}: config differs in {', '.join(differing)} "
                                     f"(use --force to resume anyway)")
    elif rank == 0 and rundir.holds_run(run_dir):
        rundir.create(run_dir, cfg)  # refuses, naming the run it would overwrite
    gan = build(cfg, data, device)  # data problems surface here, before anything is written
    if not resume and rank == 0:
        rundir.create(run_dir, cfg)
    G, D, data = gan.G, gan.D, gan.data
    lr_d = cfg.lr_d or cfg.lr
    opt_G = optim.build_optimizer(cfg, G.parameters(), cfg.lr)
    opt_D = optim.build_optimizer(cfg, D.parameters(), lr_d)
    x_all = data.x.to(device)
    m, k = cfg.batch_size, cfg.k
    batches = RealBatches(x_all, m, cfg.seed, rank, world)
    total = cfg.total_steps(data.n // world)
    g_loss_fn = losses.generator_loss(cfg.loss)
    concat = not has_batchnorm(D)
    z_fixed = fixed_noise(cfg, 2500 if data.kind == "toy" else N_FIXED, device)
    reals_per_step = 1 if cfg.update == "simultaneous" else k

    def noise():
        """This process's m noise vectors: its shard of the global batch of m * world."""
        z = sample_noise(m * world, cfg.z_dim, cfg.noise, device)
        return z if world == 1 else z[rank * m:(rank + 1) * m]

    step, elapsed = 0, 0.0
    if resume:
        state = checkpoint.load(run_dir / "checkpoints" / "last.pt", device)
        G.load_state_dict(state["G"]), D.load_state_dict(state["D"])
        if gan.G_ema is not None:
            gan.G_ema.load_state_dict(state["G_ema"])
        opt_G.load_state_dict(state["opt_G"]), opt_D.load_state_dict(state["opt_D"])
        step, elapsed = int(state["step"]), float(state.get("seconds", 0.0))
        _set_rng_state(state["rng"], device)
        if rank == 0:
            rundir.truncate_metrics(run_dir, step)
            rundir.write_config(run_dir, cfg)
    else:
        torch.manual_seed(cfg.seed + 1)  # training randomness, independent of the initialisation's
    # the passes run on working copies (bf16 weights in bf16; the models themselves in fp32)
    G_work, D_work = Working(G, DTYPES[cfg.precision]), Working(D, DTYPES[cfg.precision])
    if world > 1:  # replicas; the raw working modules serve the steps that must not synchronise
        from torch.nn.parallel import DistributedDataParallel as DDP

        G_sync, D_sync = DDP(G_work.module), DDP(D_work.module)
    else:
        G_sync, D_sync = G_work.module, D_work.module
    d_params = list(D_work.module.parameters())
    g_params = list(G_work.module.parameters())

    def d_logits(x, fake):
        if concat:
            logits = D_sync(torch.cat([x, fake]))
            return logits[:len(x)], logits[len(x):]
        return D_sync(x), D_sync(fake)

    def state_dict() -> dict:
        return {"G": G.state_dict(), "D": D.state_dict(), "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
                "step": step, "seconds": elapsed + time.perf_counter() - t0, "rng": _rng_state(device),
                "config": cfg.to_dict(), **({"G_ema": gan.G_ema.state_dict()} if gan.G_ema is not None else {})}

    def save():
        _check_finite(step, {}, {"G": G, "D": D})
        checkpoint.save_rotating(state_dict(), run_dir / "checkpoints", step, cfg.keep_checkpoints)

    def d_fn(x):
        return gan.discriminate(x).cpu().numpy()

    monitor = CollapseMonitor(data)
    warnings_seen: list[str] = []

    def pictures():
        x = gan.sample(len(z_fixed), z_fixed).cpu()
        plot_samples(x, data, d_fn, run_dir / "samples" / f"step-{step:08d}.png", f"{cfg.dataset}, step {step}")
        _, warning = monitor(step, x)
        if warning:
            warnings_seen.append(warning)
            tqdm.write(f"gankit: warning: {warning}")

    acc = torch.zeros(len(LOGGED), device=device)
    n_acc, last_row = 0, {}
    t0 = time.perf_counter()
    if not resume and rank == 0:
        save()  # a good checkpoint exists from the start
    bar = tqdm(total=total, initial=step, disable=not progress or rank != 0, dynamic_ncols=True, desc="train")
    with _StopRequest() as stop:
        while step < total:
            b = step * reals_per_step
            epoch = batches.epoch_of(b)
            optim.apply_schedule(opt_G, cfg, cfg.lr, step, epoch)
            optim.apply_schedule(opt_D, cfg, lr_d, step, epoch)
            if cfg.update == "alternating":
                for j in range(k):
                    x = D_work.input(batches(b + j))
                    z = G_work.input(noise())
                    with torch.no_grad():
                        fake = G_work(z)
                    real_l, fake_l = d_logits(x, fake)
                    loss_d = losses.discriminator_loss(real_l.float(), fake_l.float())
                    D_work.zero_grad()
                    loss_d.backward()
                    D_work.step(opt_D)
                z = G_work.input(noise())
                D_work.module.requires_grad_(False)  # G's step needs dL/dG only: no gradient buffers for D
                loss_g = g_loss_fn(D_work(G_sync(z)).float())
                G_work.zero_grad()
                loss_g.backward()
                G_work.step(opt_G)
                D_work.module.requires_grad_(True)
            else:
                x = D_work.input(batches(b))
                z = G_work.input(noise())
                real_l, fake_l = d_logits(x, G_sync(z))
                loss_d = losses.discriminator_loss(real_l.float(), fake_l.float())
                loss_g = g_loss_fn(fake_l.float())
                D_work.zero_grad()
                G_work.zero_grad()
                torch.autograd.backward(loss_d, inputs=d_params, retain_graph=True)
                torch.autograd.backward(loss_g, inputs=g_params)
                D_work.step(opt_D)
                G_work.step(opt_G)
            if gan.G_ema is not None:
                update_ema(gan.G_ema, G, min(cfg.ema, (1 + step) / (10 + step)))
            with torch.no_grad():
                acc += torch.stack([loss_d.detach(), loss_g.detach(), torch.sigmoid(real_l.detach().float()).mean(),
                                    torch.sigmoid(fake_l.detach().float()).mean(), -loss_d.detach()])
            n_acc += 1
            step += 1
            bar.update(1)

            if step % cfg.log_every == 0 or step == total or stop.signum:
                if world > 1:
                    torch.distributed.all_reduce(acc)
                    acc /= world
                values = dict(zip(LOGGED, (acc / n_acc).tolist()))
                _check_finite(step, values, {})
                seconds = elapsed + time.perf_counter() - t0
                last_row = {"step": step, **values, "epoch": batches.epoch_of(step * reals_per_step),
                            "seconds": round(seconds, 3)}
                if rank == 0:
                    rundir.append_metrics(run_dir, last_row)
                bar.set_postfix({"D": f"{values['d_loss']:.3f}", "G": f"{values['g_loss']:.3f}",
                                 "D(x)": f"{values['d_real']:.2f}", "D(G(z))": f"{values['d_fake']:.2f}"})
                acc.zero_()
                n_acc = 0
            if cfg.sample_every:
                picture_due = step % cfg.sample_every == 0
            else:  # at each epoch boundary
                picture_due = (step * reals_per_step) // batches.per_epoch > ((step - 1) * reals_per_step) // batches.per_epoch
            if rank == 0 and (picture_due or step == total):
                pictures()
            if rank == 0 and (step % cfg.checkpoint_every == 0 or step == total or stop.signum):
                save()
            if stop.signum:
                break
    bar.close()
    seconds = elapsed + time.perf_counter() - t0
    summary = {"step": step, "total_steps": total, "seconds": round(seconds, 3), "interrupted": bool(stop.signum),
               **{k_: last_row.get(k_) for k_ in LOGGED}, "run_dir": str(run_dir), "warnings": warnings_seen}
    if rank == 0:
        if data.kind == "toy" and not stop.signum:
            summary["modes"] = mode_metrics(gan.sample(2500).cpu(), data.modes, data.mode_std)
        plot_losses(rundir.read_metrics(run_dir), run_dir / "losses.png")
        rundir.write_json(run_dir, "summary.json", summary)
    if world > 1:  # the replicas go before the process group can, and every rank leaves together
        del G_sync, D_sync
        torch.distributed.barrier()
    return gan, summary
