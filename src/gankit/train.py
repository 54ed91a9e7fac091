"""The training loop: Algorithm 1 of Goodfellow et al. (2014), one loop for every game, model and dataset.

    for each iteration:
        for k steps:  sample m noise z and m real x; ascend V(D, G) by a step on D
        sample m noise z; descend the generator loss by a step on G

The formulas are the objective's (`gankit.objectives`), the updates the step functions'
(`gankit.steps`), the networks and optimisers the train state's (`gankit.state`); logging, pictures,
checkpoints and the summary are hooks (`gankit.hooks`). `update = "simultaneous"` takes D's and G's
gradients from one shared minibatch instead, as the paper's released code did. Randomness comes from
the seeded torch RNG and the data order from (seed, epoch), so a run is reproducible and resumes
bit-exactly.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gankit import augment, ensemble, objectives, rundir, semi, threads
from gankit.config import Config, ConfigError, diff, from_dict, run_keys
from gankit.data import Batches, Data
from gankit.device import rank_world, resolve_device
from gankit.errors import CheckpointError, GankitError, NonFiniteError
from gankit.gan import GAN, build, check_finite_weights, header, one_line, read
from gankit.hooks import Checkpoints, Log, Pictures, ProgressBar, Summary, Validation
from gankit.metrics.collapse import CollapseMonitor
from gankit.models import has_batchnorm
from gankit.monitor import build as build_monitor
from gankit.noise import sample_noise
from gankit.state import TrainState, player, update_ema
from gankit.steps import bigan_d_step, bigan_ge_step, d_step, g_step, simultaneous_step

__all__ = ["fit", "train", "GAN", "build", "NonFiniteError", "update_ema"]
N_FIXED = 100  # fixed-noise samples drawn for the pictures (2,500 for toys)


def train(cfg: Config, run_dir: str | Path, resume: bool = False, force: bool = False, progress: bool = True,
          data: Data | None = None, hooks: list | None = None) -> dict:
    """Train per `cfg` into `run_dir` (created, or continued when `resume`); returns the summary.

    Under torch.distributed (e.g. torchrun) every process trains a replica on its own shard of each
    batch; `cfg.batch_size` is the per-process m.
    """
    return fit(cfg, run_dir, resume, force, progress, data, hooks)[1]


def fit(cfg: Config, run_dir: str | Path, resume: bool = False, force: bool = False, progress: bool = True,
        data: Data | None = None, hooks: list | None = None) -> tuple[GAN, dict]:
    """`train`, also returning the trained GAN. `hooks`: more `gankit.hooks.Hook`s, run after gankit's own."""
    with _StopRequest() as stop:  # a signal from here on is a request, obeyed after a whole step
        run = _start(cfg, Path(run_dir), resume, force, progress, data)
        params = sum(p.numel() for net in (run.gan.G, run.gan.D, run.gan.E) if net is not None for p in net.parameters())
        try:
            with threads.using(threads.resolve(cfg.threads, params)):  # sharing the machine: gankit.threads
                return _loop(cfg, run, stop, hooks or [])
        finally:
            run.release()


def _loop(cfg: Config, run: "_Run", stop: "_StopRequest", extra_hooks: list) -> tuple[GAN, dict]:
    s, batches, objective, hooks = run.state, run.batches, run.objective, run.hooks + extra_hooks
    summary = {"step": s.step, "total_steps": run.total, "run_dir": str(run.dir),
               "threads": torch.get_num_threads()}
    # a BiGAN's D judges (x, E(x)) against (G(z), z), and G's update trains E with it (the same loop)
    d_update, g_update = (bigan_d_step, bigan_ge_step) if s.E is not None else (d_step, g_step)
    try:
        while s.step < run.total:
            s.schedule(cfg, batches.epoch_at(s.step))  # lr / decay^t and SGD momentum at this epoch
            objective.schedule(batches.epoch_at(s.step))  # (top-k training: the share of G's batch its loss keeps)
            b = batches.first_of(s.step)
            if cfg.update == "alternating":
                for j in range(cfg.k):  # for k steps: update D on a fresh real minibatch
                    x, c = batches(b + j)
                    stats = d_update(s, objective, x, c)
                stats |= g_update(s, objective, c, x_real=x)  # then one step on G (conditional: on the last c)
            else:
                stats = simultaneous_step(s, objective, *batches(b))
            s.update_ema()
            s.step += 1
            stopping = run.agree_to_stop(stop.signum, s.step)
            last = s.step == run.total or stopping
            for hook in hooks:
                hook.after_step(s, stats, last)
            if stopping:
                break
    except NonFiniteError as e:  # the last good checkpoint stays; the summary says how the run ended
        summary.update(step=s.step, seconds=round(s.clock(), 3), interrupted=False, diverged=str(e))
        if run.rank == 0:
            rundir.write_json(run.dir, "summary.json", summary)
        raise
    summary.update(step=s.step, seconds=round(s.clock(), 3), interrupted=s.step < run.total)
    for hook in hooks:
        hook.close(s, summary)
    if run.world > 1:  # the replicas go before the process group can, and every rank leaves together
        s.G.net = s.D.net = None
        torch.distributed.barrier()
    return run.gan, summary


STOP_EVERY = 10  # under torchrun, the ranks agree on a stop request every this many steps


@dataclass
class _Run:
    dir: Path
    gan: GAN
    state: TrainState
    batches: Batches
    objective: object
    hooks: list
    total: int
    rank: int
    world: int
    lock: object = None

    def agree_to_stop(self, signum, step: int) -> bool:
        """Whether to stop after this step: at once in one process; under torchrun, when any rank was asked,
        checked by every rank at the same steps so that all stop at the same one."""
        if self.world == 1:
            return bool(signum)
        if step % STOP_EVERY and step != self.total:
            return False
        flag = torch.tensor([1.0 if signum else 0.0], device=self.state.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()


def _start(cfg: Config, run_dir: Path, resume: bool, force: bool, progress: bool, data: Data | None) -> _Run:
    """Check the run directory, load the data, build the networks, optimisers and hooks; restore the
    train state when resuming. Bad input is refused before anything is written; a new run directory is
    created whole (first checkpoint, then config) or not at all; the directory stays locked while training."""
    rank, world = rank_world()
    device = resolve_device(cfg.device)
    if cfg.tensorboard:  # a missing package is said before anything is written
        from gankit.tensorboard import summary_writer

        summary_writer()
    lock, saved, new = None, None, None
    try:
        if resume and rank == 0:
            lock = rundir.open_existing(run_dir)
        if resume:
            saved = read(run_dir / "checkpoints" / "last.pt", device)
            _check_resumable(run_dir, saved, cfg, force)
        elif rank == 0 and rundir.holds_run(run_dir):
            raise rundir.RunDirError(f"{run_dir} already holds a run; continue it with --resume {run_dir} or choose "
                                     f"another --out")
        stacked = ensemble.n_members(cfg) > 1  # a seed ensemble (gankit.ensemble): stacked networks, the same loop
        if cfg.encoder and world > 1:
            raise ConfigError("config key 'encoder': the jointly trained encoder runs in one process, not under torchrun")
        # data problems surface here, before anything is written
        gan = (ensemble.build if stacked else build)(cfg, data, device)
        data = gan.data
        monitor = None if not cfg.monitor or rank != 0 else build_monitor(cfg.monitor, gan) if not stacked else \
            ensemble.Monitors(cfg.monitor, gan)  # an ensemble: every member's
        reals_per_step = cfg.k if cfg.update == "alternating" else 1
        labels = data.labels.to(device) if cfg.conditional else None  # conditional: c flows with x through the steps
        batches = Batches(data.x.to(device), cfg.batch_size, cfg.seed, rank, world, labels, reals_per_step) \
            if not stacked else ensemble.Batches(data.x.to(device), cfg.batch_size,
                                                 [ensemble.member_config(cfg, e).seed for e in range(
                                                     ensemble.n_members(cfg))], rank, world, labels, reals_per_step)
        if cfg.inpaint:  # inpainting: c, each real image's context (visible pixels, mask), flows with x instead
            batches = _inpaint_batches(cfg, data, device, rank, world, reals_per_step)
        # semi-supervised: the objective draws the labelled minibatch of each D update (refused here if it cannot)
        labelled = semi.labelled_batches(cfg, data, device) if cfg.labels else None
        total = cfg.steps if cfg.steps is not None else batches.steps_for(cfg.epochs)
        m = cfg.batch_size

        def shard_noise() -> torch.Tensor:
            """This process's m noise vectors: its shard of the global batch of m * world."""
            z = sample_noise(m * world, cfg.z_dim, cfg.noise, device)
            return z if world == 1 else z[rank * m:(rank + 1) * m]

        # an ensemble: each member its own z
        noise = ensemble.Noise(cfg, m, device, rank, world) if stacked else shard_noise
        G, D = player(gan.G, cfg, cfg.lr, world > 1), player(gan.D, cfg, cfg.lr_d or cfg.lr, world > 1)
        s = ensemble.State(G, D, noise, device, gan.G_ema, cfg.ema, cfg=cfg) if stacked else \
            TrainState(G, D, noise, device, gan.G_ema, cfg.ema)
        if gan.E is not None:  # BiGAN: E trains with G, at G's learning rate
            s.E = player(gan.E, cfg, cfg.lr)
        if resume:
            try:
                s.load_state_dict(saved)
                check_finite_weights(run_dir / "checkpoints" / "last.pt", s.G.master, s.D.master, s.G_ema, gan.E)
            except (RuntimeError, KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
                if isinstance(e, GankitError):
                    raise
                raise CheckpointError(f"checkpoint {run_dir / 'checkpoints' / 'last.pt'} does not fit this run's "
                                      f"networks and optimisers: {one_line(e)}") from None
            if s.step >= total:
                raise rundir.RunDirError(f"{run_dir} is finished: it is at step {s.step} of {total}; extend it with a "
                                         f"larger --steps or --epochs")
        else:
            torch.manual_seed(cfg.seed + 1)  # training randomness, independent of the initialisation's
        ckpt = Checkpoints(run_dir, cfg.checkpoint_every, cfg.keep_checkpoints, header(gan))
        if rank == 0:
            if resume:
                rundir.truncate_metrics(run_dir, s.step)
                ckpt.save(s)  # the checkpoint carries the config it continues under, before config.toml says it
                rundir.write_config(run_dir, cfg)
            else:
                new = rundir.NewRun(run_dir)
                ckpt.save(s)  # a good checkpoint exists from the start, and before the config that makes it a run
                lock = new.commit(cfg)
    except BaseException:
        if new is not None:
            new.abort()
        elif lock is not None:
            lock.release()
        raise
    policies = augment.parse(cfg.augment)
    objective = objectives.build(cfg, joint=not has_batchnorm(gan.D),
                                 augment=augment.Augment(policies, gan.spec.shape) if policies else None,
                                 labelled=labelled)
    if stacked:  # each member's gradients as in a plain run
        objective = ensemble.Game(objective, cfg)
    if getattr(objective, "penalties", None) is not None:  # (after the ensemble's, which may replace them)
        objective.penalties.last = s.held  # the lazily updated values it logs resume with the run
    validation = None if not cfg.monitor else \
        Validation(run_dir, monitor, cfg.monitor_every, batches.epoch_ends_at, header(gan)) if not stacked else \
        ensemble.Validation(run_dir, monitor, cfg.monitor_every, batches.epoch_ends_at, header(gan), batches.epoch_at)
    log = Log(run_dir, objective.logged, cfg.log_every, batches.epoch_at, device, world, write=rank == 0,
              extras=_divergences(gan, cfg, device) if rank == 0 and gan.spec.kind == "toy" and gan.spec.dim == 2
              and not stacked else None, validation=validation)
    hooks = [log, ProgressBar(log, total, s.step, progress and rank == 0)]
    if rank == 0:
        n_fixed = 2500 if data.kind == "toy" else N_FIXED
        if gan.n_classes and data.kind == "image":  # a conditional run's pictures: 10 samples of each class per row
            n_fixed = 10 * gan.n_classes
        z_fixed = fixed_noise(cfg, n_fixed, device)
        pictures = Pictures(run_dir, gan, z_fixed, cfg.sample_every, batches.epoch_ends_at, CollapseMonitor(gan.spec)) \
            if not stacked else ensemble.Pictures(run_dir, gan, z_fixed, cfg.sample_every, batches.epoch_ends_at)
        hooks += [pictures, ckpt, Summary(run_dir, gan) if not stacked else ensemble.Summary(run_dir, gan, validation)]
        if cfg.tensorboard:  # after Pictures and Summary: it shows what they made
            from gankit.tensorboard import TensorBoard

            hooks.append(TensorBoard(run_dir, log, pictures, gan, data.x, cfg.seed,
                                     purge_step=s.step if resume else None, labels=data.labels))
    return _Run(run_dir, gan, s, batches, objective, hooks, total, rank, world, lock)


def _inpaint_batches(cfg: Config, data: Data, device, rank: int, world: int, reals_per_step: int) -> Batches:
    """An inpainting run's minibatches: c, each real image's context (visible pixels, mask), flows with x."""
    from gankit.config import inpaint_masks
    from gankit.inpaint import ContextBatches

    return ContextBatches(data.x.to(device), cfg.batch_size, cfg.seed, inpaint_masks(cfg.inpaint), tuple(data.shape),
                          rank, world, reals_per_step)


def _check_resumable(run_dir: Path, saved: dict, cfg: Config, force: bool) -> None:
    """The requested config against config.toml and the checkpoint's own: what defines the run must agree
    (unless forced); a checkpoint whose networks differ in shape never fits."""
    try:
        in_checkpoint = from_dict(saved["config"])
    except (KeyError, TypeError, ConfigError) as e:
        raise CheckpointError(f"checkpoint {run_dir / 'checkpoints' / 'last.pt'} holds no valid config: "
                              f"{one_line(e)}") from None
    differing = sorted(set(diff(rundir.read_config(run_dir), cfg, keys=run_keys()))
                       | set(diff(in_checkpoint, cfg, keys=run_keys())))
    if differing and not force:
        raise rundir.RunDirError(f"cannot resume {run_dir}: config differs in {', '.join(differing)} "
                                 f"(use --force to resume anyway)")


def _divergences(gan: GAN, cfg: Config, device: torch.device):
    """JSD and W1 between p_data and the samples of 500 fixed z (own generator: training is not disturbed)."""
    from gankit.metrics.divergence import Divergences

    track = Divergences(gan.spec.modes, gan.spec.mode_std, seed=cfg.seed)
    z = sample_noise(500, cfg.z_dim, cfg.noise, "cpu", torch.Generator().manual_seed(cfg.seed + 15485863)).to(device)
    return lambda: {k: round(v, 6) for k, v in track(gan.sample(len(z), z)).items()}


def fixed_noise(cfg: Config, n: int, device: torch.device) -> torch.Tensor:
    """The same z for every picture of a run, drawn from its own generator so it disturbs nothing."""
    return sample_noise(n, cfg.z_dim, cfg.noise, "cpu", torch.Generator().manual_seed(cfg.seed + 7919)).to(device)


class _StopRequest:
    """Turns SIGINT/SIGTERM into a flag checked after each step, so a step is never cut in half."""

    def __init__(self):
        self.signum = None

    def __enter__(self):
        self._old = {}
        with contextlib.suppress(ValueError):  # not the main thread: no handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # asked twice: stop at once (checkpoints are atomic; the last good one stays)
            self.__exit__()
            raise KeyboardInterrupt
        self.signum = signum
        tqdm.write(f"gankit: {signal.Signals(signum).name}: stopping after this step (again to stop at once)",
                   file=sys.stderr)

    def __exit__(self, *exc):
        for sig, h in self._old.items():
            signal.signal(sig, h)
