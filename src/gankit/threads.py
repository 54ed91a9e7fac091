"""How many CPU threads a training run uses: few enough to share the machine, enough for the model.

Two processes that each run as many OpenMP threads as there are cores slow each other many times over
(the threads spin waiting for one another), while a thread that has a core of its own loses little.
`--threads 0` (the default) therefore picks min(cores free now, what the model can use):

    cores free  = cores this process may run on (os.sched_getaffinity)
                  - the other tasks running now (/proc/loadavg, least of 5 readings 10 ms apart; where that is
                    not available, the 1-minute load average less this process's own share of it),
                  rounded, at least 1
    model's use = one thread per PARAMS_PER_THREAD parameters of G and D together, at least 1
                  (a 16-unit toy MLP: 1; the default toy MLP, 265k parameters: 5, and on an idle 2-core
                  machine 2 threads train it 1.7x faster than 1 — 53 s against 91 s, measured 2026-11-30)

In the fallback, this process's share of the load average is estimated from its CPU time: the load average is an
exponentially weighted mean with a 60 s time constant, so a process that has used c cores on average for
t seconds contributes about c (1 - e^(-t/60)).
"""

from __future__ import annotations

import contextlib
import math
import os
import resource

import torch

PARAMS_PER_THREAD = 50_000


def choose_threads(params: int, cores: int, load: float, own: float = 0.0) -> int:
    """Threads for a model of `params` parameters on `cores` cores with a 1-minute `load` average of which
    `own` is this process's: min(cores free, what the model can use), at least 1. A pure function."""
    free = max(1, math.floor(cores - max(0.0, load - own) + 0.5))
    useful = max(1, params // PARAMS_PER_THREAD)
    return int(min(cores, free, useful))


def _own_load() -> float:
    """This process's estimated contribution to the 1-minute load average (see the module's docstring)."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            life = float(f.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0
    use = resource.getrusage(resource.RUSAGE_SELF)
    if life <= 0:
        return 0.0
    return (use.ru_utime + use.ru_stime) / life * (1 - math.exp(-life / 60))


def _running_others(samples: int = 5, gap: float = 0.01) -> float | None:
    """Runnable tasks on the machine right now other than this one: /proc/loadavg's running count less one, the
    least of a few readings (a momentary spike is not a job). None where /proc/loadavg is not readable."""
    import time

    seen = []
    for i in range(samples):
        try:
            with open("/proc/loadavg") as f:
                seen.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return None
        if i + 1 < samples:
            time.sleep(gap)
    return float(max(0, min(seen)))


def machine() -> tuple[int, float, float]:
    """(cores this process may use, load from other jobs, this process's share of it) right now: the tasks
    running now where Linux says (the 1-minute average lags a job that just ended, such as the pip install
    before a first run, by a minute or more), else the 1-minute load average with this process's share."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    others = _running_others()
    if others is not None:
        return cores, others, 0.0
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return cores, load, _own_load()


def resolve(threads: int, params: int) -> int:
    """The thread count for config value `threads` (0 = auto) and a model of `params` parameters."""
    return threads if threads > 0 else choose_threads(params, *machine())


@contextlib.contextmanager
def using(n: int):
    """torch uses `n` intra-op threads inside the block, and its previous count again after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


