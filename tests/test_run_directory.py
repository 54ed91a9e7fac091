"""No run lost, no result silently wrong: the run directory as a transaction, one writer, files validated on
read, stops that every process obeys, and every failure said in one line."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib

import pytest
import torch

from gankit import checkpoint, rundir
from gankit.cli import main

TINY = ["--hidden", "16", "--layers", "1", "--batch-size", "32", "--log-every", "5", "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def one_line_error(capsys, fragment: str) -> str:
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("gankit: run directory")]  # the one informational line before training
    assert len(err) == 1 and err[0].startswith("gankit: error:") and fragment in err[0], err
    return err[0]


def train(run, *flags) -> int:
    return main(["train", "--out", str(run), *TINY, *flags])


def resume_refused(run, capsys, fragment: str, *flags, steps: int = 6) -> None:
    """Resuming `run` to `steps` is refused in one line holding `fragment`."""
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--steps", str(steps), "--no-progress", *flags]) == 2
    one_line_error(capsys, fragment)


def wait_for_rows(run, proc, n=1, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            if len(rundir.read_metrics(run)) >= n:
                return
        except rundir.RunDirError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"no metrics from the run (exit code {proc.poll()})")


# --- one writer -------------------------------------------------------------------------------------------

def test_a_second_writer_is_refused_naming_the_first(tmp_path, capsys):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "gankit", "train", "--out", str(run), "--steps", "10000000", *TINY],
                            env=ENV, stderr=subprocess.DEVNULL)
    try:
        wait_for_rows(run, proc)
        assert main(["train", "--resume", str(run), "--steps", "50", "--no-progress"]) == 2  # short, were it let in
        one_line_error(capsys, f"in use by another gankit process (pid {proc.pid})")
        assert train(run, "--steps", "5") == 2
        one_line_error(capsys, "already holds a run")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    step = checkpoint.load(run / "checkpoints" / "last.pt")["step"]
    assert main(["train", "--resume", str(run), "--steps", str(step + 3), "--no-progress"]) == 0  # lock released
    steps = [r["step"] for r in rundir.read_metrics(run)]
    assert steps == sorted(set(steps))  # one writer: no duplicate or out-of-order rows


# --- created whole or not at all --------------------------------------------------------------------------

def test_bad_input_caught_late_leaves_nothing(tmp_path, capsys):
    run = tmp_path / "new" / "run"
    assert train(run, "--steps", "5", "--batch-size", "1000000") == 2  # more than the 100,000 toy samples
    one_line_error(capsys, "fewer than one batch")
    assert not (tmp_path / "new").exists()


def test_a_failure_while_creating_removes_what_it_made(tmp_path, monkeypatch):
    import gankit.rundir as rd

    def dies(*a, **k):
        raise KeyboardInterrupt  # a kill while the config is being written

    monkeypatch.setattr(rd, "write_config", dies)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "run", "--steps", "3")
    assert not (tmp_path / "run").exists()


def test_a_directory_left_without_a_config_blocks_nothing(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"torn")  # a creation killed before its config
    (run / "metrics.jsonl").write_text('{"step": 99}\n')
    assert train(run, "--steps", "5") == 0
    assert [r["step"] for r in rundir.read_metrics(run)] == [5]


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert train(tmp_path / "f", "--steps", "2") == 2
    one_line_error(capsys, "not a directory")


# --- checkpoints that do not belong -----------------------------------------------------------------------

def test_a_checkpoint_of_another_run_is_refused(tmp_path, capsys):
    a, b = tmp_path / "ring8", tmp_path / "grid25"
    assert train(a, "--steps", "3") == 0 and train(b, "--steps", "3", "--dataset", "grid25") == 0
    shutil.copy(b / "checkpoints" / "last.pt", a / "checkpoints" / "last.pt")
    resume_refused(a, capsys, "config differs in dataset", steps=6)


def test_a_hand_edited_config_is_compared_with_the_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--steps", "3") == 0
    p = run / "config.toml"
    p.write_text(p.read_text().replace("lr = 0.001", "lr = 0.002"))
    resume_refused(run, capsys, "config differs in lr", steps=6)


def test_shapes_that_differ_never_load_even_forced(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--steps", "3") == 0
    resume_refused(run, capsys, "does not fit this run's networks", "--hidden", "8", "--force", steps=6)


# --- files taken on trust no more -------------------------------------------------------------------------

def test_a_garbled_metrics_line_is_an_error_naming_file_and_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--steps", "15") == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join([lines[0], lines[1][:-7] + "garble", lines[2]]) + "\n")
    resume_refused(run, capsys, "metrics.jsonl:2: not JSON", steps=20)


def test_an_append_cut_short_is_dropped_with_a_warning(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--steps", "10", "--checkpoint-every", "5") == 0
    text = (run / "metrics.jsonl").read_text()
    (run / "metrics.jsonl").write_text(text[:-9])  # the last row's append was cut short
    rows = rundir.read_metrics(run)
    assert [r["step"] for r in rows] == [5] and "incomplete last line" in capsys.readouterr().err


def test_an_empty_config_is_not_the_defaults(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--steps", "3") == 0
    (run / "config.toml").write_text("")
    resume_refused(run, capsys, "missing config keys", steps=6)


def test_any_out_path_round_trips_through_the_config(tmp_path):
    run = tmp_path / 'we"ird\nname\\x'
    assert train(run, "--steps", "3") == 0
    assert main(["train", "--resume", str(run), "--steps", "6", "--no-progress"]) == 0
    assert rundir.read_config(run).out == str(run)


# --- numbers ----------------------------------------------------------------------------------------------

def test_lr_decay_above_one_never_overflows(tmp_path):
    run = tmp_path / "run"
    assert train(run, "--optimizer", "sgd", "--lr", "0.01", "--lr-decay", "2", "--steps", "1100",
                 "--log-every", "1100", "--sample-every", "100000", "--checkpoint-every", "1024") == 0
    assert checkpoint.load(run / "checkpoints" / "last.pt")["opt_G"]["param_groups"][0]["lr"] == 1e-6


@pytest.mark.parametrize("argv,fragment", [
    (["train", "--seed", str(2**64)], "'seed'"),
    (["train", "--seed", "-1"], "'seed'"),
    (["train", "--hidden", "10000000"], "'hidden'"),
    (["sample", "RUN", "--n", "-5", "--out", "OUT.npy"], "--n "),
    (["sample", "RUN", "--seed", str(2**64), "--out", "OUT.npy"], "--seed"),
    (["eval", "RUN", "--metric", "parzen", "--n-samples", "-5"], "--n-samples"),
    (["eval", "RUN", "--metric", "parzen", "--sigmas", "1e-30"], "--sigmas"),
    (["eval", "RUN", "--metric", "parzen", "--sigmas", "0.1,x"], "--sigmas"),
    (["eval", "RUN", "--metric", "parzen", "--valid-size", "0"], "--valid-size"),
])
def test_every_numeric_option_has_a_range_named_in_its_error(tmp_path, capsys, argv, fragment):
    run = tmp_path / "run"
    assert train(run, "--steps", "2") == 0
    capsys.readouterr()
    argv = [a.replace("RUN", str(run)).replace("OUT", str(tmp_path / "o")) for a in argv]
    if argv[0] == "train":
        argv += ["--out", str(tmp_path / "other"), "--no-progress"]
    assert main(argv) == 2
    one_line_error(capsys, fragment)


# --- the file system --------------------------------------------------------------------------------------

@pytest.fixture
def small_fs(tmp_path):
    """A 1.5 MiB tmpfs (root only); skipped where mounting is not allowed."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_a_full_disk_is_one_line_and_keeps_the_last_good_checkpoint(small_fs, capsys):
    run = small_fs / "run"
    # G and D of 3 x 128 with Adam's moments weigh ~0.6 MiB a checkpoint: a temporary copy beside last.pt
    # fills the 1.5 MiB before step 10
    assert train(run, "--steps", "10", "--hidden", "128", "--layers", "3", "--checkpoint-every", "5",
                 "--sample-every", "100000") == 2
    one_line_error(capsys, "No space left on device")
    state = checkpoint.load(run / "checkpoints" / "last.pt")  # the last good one, whole
    assert state["step"] in (0, 5) and not list((run / "checkpoints").glob(".*tmp*"))


def test_a_read_only_directory_is_one_line(small_fs, capsys):
    assert subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], capture_output=True).returncode == 0
    assert train(small_fs / "run", "--steps", "2") == 2
    one_line_error(capsys, "Read-only file system")


def test_sample_into_a_missing_directory_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--steps", "2") == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--out", str(tmp_path / "missing" / "x.npy")]) == 2
    one_line_error(capsys, "does not exist")


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def test_an_image_declaring_30000_by_30000_pixels_is_one_line(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "bomb.png").write_bytes(_png_header(30000, 30000))
    assert train(tmp_path / "run", "--dataset", f"folder:{tmp_path / 'imgs'}", "--steps", "1") == 2
    one_line_error(capsys, "bomb.png: not a readable image")
    assert not (tmp_path / "run").exists()


# --- the end of a run -------------------------------------------------------------------------------------

@pytest.mark.parametrize("log_every", ["1", "1000"])  # caught by the log, or before a picture when none is due
def test_a_diverged_run_writes_a_summary_saying_so_and_draws_nothing_after(tmp_path, capsys, log_every):
    run = tmp_path / "run"
    assert train(run, "--steps", "40", "--optimizer", "sgd", "--lr", "1e30", "--momentum", "0.9",
                 "--sample-every", "1", "--log-every", log_every, "--checkpoint-every", "1000") == 1
    summary = rundir.read_json(run, "summary.json")
    assert "diverged" in summary and f"step {summary['step']}" in summary["diverged"]
    drawn = sorted(int(p.stem.split("-")[1]) for p in (run / "samples").glob("step-*.png"))
    assert not drawn or drawn[-1] < summary["step"]
    assert summary["step"] < 40  # found at the first picture of non-finite weights, not at the end's log


def test_a_signal_during_the_closing_pictures_still_writes_the_summary(tmp_path, monkeypatch):
    import gankit.hooks as hooks

    draw = hooks.Pictures.draw

    def draw_then_signal(self, step):
        draw(self, step)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(hooks.Pictures, "draw", draw_then_signal)
    assert train(tmp_path / "run", "--steps", "4", "--sample-every", "100") == 0
    summary = rundir.read_json(tmp_path / "run", "summary.json")
    assert summary["step"] == 4 and not summary["interrupted"] and (tmp_path / "run" / "losses.png").is_file()


# --- a stop request reaches every process -----------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


@pytest.mark.parametrize("target", ["launcher", "one worker"])
def test_sigterm_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path, target):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
           "-m", "gankit", "train", "--out", str(run), "--steps", "10000000", "--device", "cpu", *TINY]
    proc = subprocess.Popen(cmd, env=ENV, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_rows(run, proc, n=2)
        if target == "launcher":
            proc.send_signal(signal.SIGTERM)
        else:
            workers = _children(proc.pid)
            assert len(workers) == 2
            os.kill(workers[1], signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "Resume with: gankit train --resume" in err
    state = checkpoint.load(run / "checkpoints" / "last.pt")
    summary = rundir.read_json(run, "summary.json")
    assert summary["interrupted"] and summary["step"] == state["step"] > 0 and state["step"] % 10 == 0
    if target == "one worker":
        assert proc.returncode == 0, err  # a rank that left gloo's threads to interpreter exit aborted here (SIGABRT)
    assert main(["train", "--resume", str(run), "--steps", str(state["step"] + 3), "--no-progress"]) == 0


def test_a_corrupt_eval_record_is_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert train(run, "--steps", "2") == 0
    (run / "eval.json").write_text("{not json")
    capsys.readouterr()
    assert main(["eval", str(run), "--metric", "modes", "--n-samples", "50"]) == 2
    one_line_error(capsys, "eval.json: not valid JSON")


def test_a_second_signal_stops_at_once():
    from gankit.train import _StopRequest

    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with _StopRequest() as stop:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            assert stop.signum == signal.SIGINT  # the first: a request, obeyed after the step
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("value", [None, torch.zeros(3), torch.full((16, 2), float("nan"))])
def test_an_optimiser_state_that_does_not_fit_is_one_line(tmp_path, capsys, value):
    run = tmp_path / "run"
    assert train(run, "--steps", "3") == 0
    p = run / "checkpoints" / "last.pt"
    state = torch.load(p, weights_only=True)
    state["opt_G"]["state"][0]["exp_avg"] = value  # G's first weight is 16 x 2
    checkpoint.save(state, p)
    resume_refused(run, capsys, "does not fit this run's networks and optimisers", steps=6)
