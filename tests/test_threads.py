"""Sharing the machine: the thread count chosen from the model's size and the cores free, and applied."""

import pytest
import torch

from gankit import config as C, threads
from gankit.errors import ConfigError
from gankit.hooks import Hook
from gankit.train import fit

TINY = dict(dataset="ring8", steps=3, batch_size=16, hidden=16, log_every=1, sample_every=10**6,
            checkpoint_every=10**6)


@pytest.mark.parametrize("params,cores,load,own,want", [
    (20_000, 2, 0.0, 0.0, 1),         # a toy MLP: one thread even on an idle machine
    (20_000, 64, 0.0, 0.0, 1),
    (5_000_000, 2, 0.0, 0.0, 2),      # a big model on an idle machine: every core
    (5_000_000, 2, 1.0, 0.0, 1),      # beside one busy single-threaded job: the core left
    (5_000_000, 2, 7.5, 0.0, 1),      # overloaded: still one
    (5_000_000, 2, 2.0, 2.0, 2),      # the load is our own (a second run in this process): not counted
    (5_000_000, 16, 3.6, 0.0, 12),    # 12.4 cores free, rounded
    (5_000_000, 16, 3.4, 0.0, 13),
    (200_000, 16, 0.0, 0.0, 4),       # the model can use one thread per PARAMS_PER_THREAD parameters
    (265_475, 2, 0.0, 0.0, 2),        # the default ring8 MLP on an idle 2-core machine: both cores
    (5_000_000, 2, 0.0, 3.0, 2),      # own share above the load (estimate): never more than the cores
])
def test_choice_from_model_size_cores_and_load(params, cores, load, own, want):
    assert threads.PARAMS_PER_THREAD == 50_000
    assert threads.choose_threads(params, cores, load, own) == want


def test_machine_reads_this_process():
    cores, load, own = threads.machine()
    assert cores >= 1 and load >= 0 and 0 <= own <= cores * 4  # own: CPU time over life, decayed


def test_explicit_count_wins_over_the_machine(monkeypatch):
    monkeypatch.setattr(threads, "machine", lambda: pytest.fail("an explicit count must not look at the machine"))
    assert threads.resolve(3, 10**9) == 3


class SeeThreads(Hook):
    def __init__(self):
        self.seen = set()

    def after_step(self, s, stats, last):
        self.seen.add(torch.get_num_threads())


@pytest.mark.parametrize("n", [1, 2])
def test_threads_option_is_applied_during_training_and_undone_after(tmp_path, n):
    before = torch.get_num_threads()
    hook = SeeThreads()
    _, summary = fit(C.from_dict({**TINY, "threads": n}), tmp_path / "r", progress=False, hooks=[hook])
    assert hook.seen == {n} and summary["threads"] == n
    assert torch.get_num_threads() == before


def test_auto_uses_the_choice_for_this_model_and_machine(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(threads, "machine", lambda: (3, 0.0, 0.0))
    monkeypatch.setattr(threads, "choose_threads", lambda params, *m: seen.append((params, m)) or 3)
    hook = SeeThreads()
    fit(C.from_dict(TINY), tmp_path / "r", progress=False, hooks=[hook])
    assert hook.seen == {3}
    (params, machine), = seen
    assert machine == (3, 0.0, 0.0) and 100 < params < 10_000  # ring8 with 16 hidden units: G and D together


def test_auto_gives_a_toy_run_one_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "machine", lambda: (8, 0.0, 0.0))
    hook = SeeThreads()
    fit(C.from_dict(TINY), tmp_path / "r", progress=False, hooks=[hook])
    assert hook.seen == {1}


@pytest.mark.parametrize("bad", [-1, 5000])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ConfigError, match="threads"):
        C.from_dict({**TINY, "threads": bad})


def test_machine_counts_the_tasks_running_now_and_falls_back_to_the_load_average(monkeypatch):
    monkeypatch.setattr(threads, "_running_others", lambda: 1.0)
    assert threads.machine()[1:] == (1.0, 0.0)  # another job running now: one core taken, no own share
    monkeypatch.setattr(threads, "_running_others", lambda: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (3.5, 0.0, 0.0))
    assert threads.machine()[1] == 3.5


def test_running_others_reads_proc_loadavg(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    fake = tmp_path / "loadavg"
    fake.write_text("0.50 0.40 0.30 3/200 12345\n")  # 3 runnable tasks, this reader among them
    monkeypatch.setattr(builtins, "open", lambda p, *a, **k: real_open(fake if p == "/proc/loadavg" else p, *a, **k))
    assert threads._running_others(samples=2, gap=0.0) == 2.0
