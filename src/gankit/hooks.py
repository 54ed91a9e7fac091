"""What happens around the steps, each with its own cadence: the log, the progress bar, sample pictures
with the collapse monitor, checkpoints and the closing summary. A hook has `after_step(state, stats,
last)` and `close(state, summary)`; a new sink (TensorBoard, say) is one more hook."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from gankit import checkpoint, rundir
from gankit.errors import NonFiniteError, on_disk


def check_finite(step: int, values: dict | None = None, modules: dict | None = None) -> None:
    """NonFiniteError naming the step and the first loss or parameter that is NaN/inf."""
    for name, v in (values or {}).items():
        if not math.isfinite(v):
            raise NonFiniteError(f"step {step}: {name} is {v}; training diverged. The last good checkpoint is kept; "
                                 f"try a lower --lr")
    for mname, module in (modules or {}).items():
        for pname, p in module.named_parameters():
            if not torch.isfinite(p).all():
                raise NonFiniteError(f"step {step}: parameter {mname}.{pname} is not finite; training diverged. "
                                     f"The last good checkpoint is kept; try a lower --lr")


class Hook:
    def after_step(self, s, stats: dict, last: bool) -> None:
        pass

    def close(self, s, summary: dict) -> None:
        pass


class Log(Hook):
    """Means of the objective's stats over each `every` steps (averaged over processes) to metrics.jsonl;
    no host synchronisation between log steps."""

    def __init__(self, run_dir: Path, names: tuple[str, ...], every: int, epoch_at, device, world: int = 1,
                 write: bool = True, extras=None, validation: "Validation | None" = None):
        self.run_dir, self.names, self.every, self.epoch_at = run_dir, names, every, epoch_at
        self.world, self.write = world, write
        self.extras = extras  # a callable giving more values for each written row (e.g. divergences)
        self.validation = validation  # a row is also written whenever the validation monitor is due
        self.acc = torch.zeros(len(names), device=device)
        self.n, self.row = 0, {}

    def after_step(self, s, stats, last):
        with torch.no_grad():
            self.acc += torch.stack([stats[k] for k in self.names])
        self.n += 1
        validate = self.validation is not None and self.validation.due(s.step, last)
        if s.step % self.every and not last and not validate:
            return
        if self.world > 1:
            torch.distributed.all_reduce(self.acc)
            self.acc /= self.world
        values = dict(zip(self.names, (self.acc / self.n).tolist()))
        check_finite(s.step, values)
        self.row = {"step": s.step, **values, "epoch": self.epoch_at(s.step), "seconds": round(s.clock(), 3)}
        if self.write and self.extras is not None:
            self.row.update(self.extras())
        if self.write and validate:
            self.row.update(self.validation(s))
        if self.write:
            rundir.append_metrics(self.run_dir, self.row)
        self.acc.zero_()
        self.n = 0

    def close(self, s, summary):
        summary.update({k: self.row.get(k) for k in self.names})
        if self.validation is not None and self.validation.best is not None:
            summary["best"] = self.validation.best


class Validation:
    """The validation monitor (`gankit.monitor`), due at each epoch's end (or every `every` steps) and at the
    end; each time its value beats the best so far, the train state goes to checkpoints/best.pt (atomically).
    Its values join the log's rows; `monitor` is None on the processes that do not write."""

    def __init__(self, run_dir: Path, monitor, every: int, epoch_ends_at, header: dict):
        self.path, self.monitor, self.every, self.epoch_ends_at = run_dir / "checkpoints" / "best.pt", monitor, every, \
            epoch_ends_at
        self.header, self.best = header, None
        if monitor is not None and self.path.is_file():  # a resumed run: the best so far is the saved one's
            saved = checkpoint.load(self.path).get("monitor")
            if isinstance(saved, dict) and saved.get("metric") == monitor.name:
                self.best = saved

    def due(self, step: int, last: bool) -> bool:
        return last or (step % self.every == 0 if self.every else self.epoch_ends_at(step))

    def __call__(self, s) -> dict:
        return self.keep(s, self.monitor.value())

    def keep(self, s, value: float) -> dict:
        """The monitor's value now: the train state to best.pt when it beats the best so far; its row entry."""
        if self.monitor.better(value, None if self.best is None else self.best["value"]):
            check_finite(s.step, modules={"G": s.G.master, "D": s.D.master})
            self.best = {"metric": self.monitor.name, "value": value, "step": s.step}
            with on_disk("write checkpoint", self.path):
                self.path.parent.mkdir(parents=True, exist_ok=True)
            checkpoint.save({**self.header, **s.state_dict(), "monitor": self.best}, self.path)
        return {self.monitor.name: round(value, 4)}


class ProgressBar(Hook):
    """tqdm over the run's steps, showing the latest logged losses and D outputs."""

    SHOWN = {"d_loss": "D", "g_loss": "G", "d_real": "D(x)", "d_fake": "D(G(z))"}

    def __init__(self, log: Log, total: int, initial: int, enabled: bool):
        self.log, self.shown_step = log, None
        self.bar = tqdm(total=total, initial=initial, disable=not enabled, dynamic_ncols=True, desc="train")

    def after_step(self, s, stats, last):
        self.bar.update(1)
        row = self.log.row
        if row and row["step"] != self.shown_step:
            self.shown_step = row["step"]
            self.bar.set_postfix({label: f"{row[k]:.3f}" if k.endswith("loss") else f"{row[k]:.2f}"
                                  for k, label in self.SHOWN.items() if k in row})

    def close(self, s, summary):
        self.bar.close()


class Pictures(Hook):
    """Samples of fixed noise over D's view (every `every` steps, or at each epoch's end when 0, and at the
    end), with the collapse monitor's warnings."""

    def __init__(self, run_dir: Path, gan, z_fixed: torch.Tensor, every: int, epoch_ends_at, monitor):
        self.run_dir, self.gan, self.z, self.every, self.epoch_ends_at = run_dir, gan, z_fixed, every, epoch_ends_at
        self.monitor, self.warnings = monitor, []
        self.drawn: tuple[int, Path] | None = None  # (step, file) of the latest picture, for other sinks

    def after_step(self, s, stats, last):
        due = s.step % self.every == 0 if self.every else self.epoch_ends_at(s.step)
        if due or last:
            check_finite(s.step, modules={"G": s.G.master, "D": s.D.master})  # no pictures of a diverged run
            self.draw(s.step)

    def draw(self, step: int) -> None:
        from gankit.plots import conditional_layout, plot_conditional, plot_samples

        path = self.run_dir / "samples" / f"step-{step:08d}.png"
        title = f"{self.gan.cfg.dataset}, step {step}"
        if self.gan.context_dim:  # an inpainting run: training images, masked, completed, and whole
            from gankit.inpaint import training_picture

            with on_disk("write", path):
                x = training_picture(self.gan, self.z, path)
        elif self.gan.n_classes:  # a conditional run: one row (images) or one colour (toys) per class
            k = self.gan.n_classes
            c = conditional_layout(k, len(self.z) // k)
            x = self.gan.sample(len(c), self.z[:len(c)], c=c).cpu()
            with on_disk("write", path):
                plot_conditional(x, c, self.gan.spec, path, title)
        else:
            x = self.gan.sample(len(self.z), self.z).cpu()
            with on_disk("write", path):
                plot_samples(x, self.gan.spec, lambda t: self.gan.discriminate(t).cpu().numpy(), path, title)
        self.drawn = (step, path)
        _, warning = self.monitor(step, x)
        if warning:
            self.warnings.append(warning)
            tqdm.write(f"gankit: warning: {warning}", file=sys.stderr)

    def close(self, s, summary):
        summary["warnings"] = self.warnings


class Checkpoints(Hook):
    """The train state to checkpoints/last.pt (atomically, after checking it is finite) every `every` steps
    and at the end; `keep` > 1 keeps numbered copies too."""

    def __init__(self, run_dir: Path, every: int, keep: int, header: dict):
        self.dir, self.every, self.keep, self.header = run_dir / "checkpoints", every, keep, header

    def save(self, s) -> None:
        check_finite(s.step, modules={key: p.master for key, p in s.players().items()})
        checkpoint.save_rotating({**self.header, **s.state_dict()}, self.dir, s.step, self.keep)

    def after_step(self, s, stats, last):
        if s.step % self.every == 0 or last:
            self.save(s)


class Summary(Hook):
    """At the end: mode coverage (toy data, finished runs), the loss curves and summary.json."""

    def __init__(self, run_dir: Path, gan):
        self.run_dir, self.gan = run_dir, gan

    def close(self, s, summary):
        from gankit.data.toy import eval_samples
        from gankit.metrics.modes import mode_metrics
        from gankit.plots import plot_losses

        spec = self.gan.spec
        if spec.kind == "toy" and not summary["interrupted"]:
            n = eval_samples(len(spec.modes))
            summary["modes"] = mode_metrics(self.gan.sample(n).cpu(), spec.modes, spec.mode_std)
            if self.gan.n_classes:  # each class on its own mode?
                from gankit.metrics.conditional import on_mode

                c = torch.arange(n) % self.gan.n_classes
                summary["class_on_mode"] = on_mode(self.gan.sample(n, c=c).cpu(), c, spec.modes, spec.mode_std)
        if self.gan.E is not None and not summary["interrupted"]:  # BiGAN: how well E inverts G
            from gankit.inference import joint_summary

            summary["encoder"] = joint_summary(self.gan)
        if self.gan.cfg.objective == "semi-supervised" and not summary["interrupted"]:  # D as a classifier
            from gankit.semi import ssl_error

            summary["ssl_error"] = ssl_error(self.gan)
        with on_disk("write", self.run_dir / "losses.png"):
            plot_losses(rundir.read_metrics(self.run_dir), self.run_dir / "losses.png")
        rundir.write_json(self.run_dir, "summary.json", summary)
