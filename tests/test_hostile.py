"""Hostile input: property-based mutations (hypothesis) of a small run's config.toml, metrics.jsonl and checkpoint,
each followed by resume, sample and eval. Every outcome is success with correct content or a one-line error:
never a traceback, a hang or silent loss. A handful of cases by default; `pytest -m slow` runs hundreds."""

import io
import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from gankit import checkpoint, rundir
from gankit.cli import main

STEPS, RESUME_TO = 4, 6
FAST = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
MANY = settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("hostile") / "run"
    assert main(["train", "--out", str(run), "--steps", str(STEPS), "--hidden", "8", "--layers", "1",
                 "--batch-size", "16", "--log-every", "2", "--sample-every", "1000", "--no-progress"]) == 0
    return run


def attempt(argv, capsys) -> int:
    """Run a command; an error must be one line naming itself."""
    capsys.readouterr()
    rc = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("gankit: error")]
    assert rc in (0, 1, 2), rc
    if rc:
        assert len(err) == 1, err
    return rc


def use(run, tmp, capsys) -> None:
    """Resume, sample, eval: each a success with the right content, or one line."""
    if attempt(["train", "--resume", str(run), "--steps", str(RESUME_TO), "--no-progress"], capsys) == 0:
        steps = [r["step"] for r in rundir.read_metrics(run)]
        assert steps == sorted(set(steps)) and steps[-1] == RESUME_TO
        assert checkpoint.load(run / "checkpoints" / "last.pt")["step"] == RESUME_TO
    if attempt(["sample", str(run), "--n", "5", "--out", str(tmp / "x.npy")], capsys) == 0:
        x = np.load(tmp / "x.npy")
        assert x.shape == (5, 2) and np.isfinite(x).all()
    if attempt(["eval", str(run), "--metric", "modes", "--n-samples", "50", "--json"], capsys) == 0:
        assert rundir.read_json(run, "eval.json")["modes"]["n_modes"] == 8


def fresh_copy(base_run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("case")
    shutil.copytree(base_run, tmp / "run")
    return tmp, tmp / "run"


# mutations of text and bytes
positions = st.integers(0, 10_000)
toml_values = st.one_of(st.integers(-2**70, 2**70).map(str), st.floats().map(repr), st.sampled_from(["true", "false"]),
                        st.text(max_size=8).map(json.dumps), st.just("[1, 2]"), st.just("{a = 1}"), st.just(""))
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=6),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                           max_leaves=6)
line_ops = st.one_of(
    st.tuples(st.just("delete"), positions), st.tuples(st.just("duplicate"), positions),
    st.tuples(st.just("swap"), positions), st.tuples(st.just("truncate"), positions),
    st.tuples(st.just("flip"), positions, st.integers(1, 255)),
)


def mutate_bytes(data: bytes, op) -> bytes:
    lines = data.split(b"\n")
    kind, i = op[0], op[1]
    if kind == "truncate":
        return data[:i % (len(data) + 1)]
    if kind == "flip":
        if not data:
            return data
        j = i % len(data)
        return data[:j] + bytes([data[j] ^ op[2]]) + data[j + 1:]
    j = i % len(lines)
    if kind == "delete":
        del lines[j]
    elif kind == "duplicate":
        lines.insert(j, lines[j])
    elif kind == "swap":
        k = (j + 1) % len(lines)
        lines[j], lines[k] = lines[k], lines[j]
    elif kind == "value":  # config: a key's value replaced
        if b" = " in lines[j]:
            lines[j] = lines[j].split(b" = ")[0] + b" = " + op[2].encode()
    elif kind == "row":  # metrics: a row replaced by arbitrary JSON
        lines[j] = json.dumps(op[2]).encode()
    return b"\n".join(lines)


config_ops = st.one_of(line_ops, st.tuples(st.just("value"), positions, toml_values))
metrics_ops = st.one_of(line_ops, st.tuples(st.just("row"), positions, json_values))


def _mutate_file(base_run, tmp_path_factory, capsys, name, ops):
    tmp, run = fresh_copy(base_run, tmp_path_factory)
    p = run / name
    data = p.read_bytes()
    for op in ops:
        data = mutate_bytes(data, op)
    p.write_bytes(data)
    use(run, tmp, capsys)


# checkpoint mutations: bytes, or one entry of the state replaced or dropped
ckpt_values = st.one_of(st.none(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=5),
                        st.lists(st.integers(0, 3), max_size=3).map(lambda s: torch.zeros(s)),
                        st.just(torch.full((8, 2), float("nan"))), st.just({}), st.just([]))


def _entries(obj, prefix=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield prefix + (k,)
            yield from _entries(v, prefix + (k,))


def _mutate_checkpoint(base_run, tmp_path_factory, capsys, data, byte_ops):
    tmp, run = fresh_copy(base_run, tmp_path_factory)
    p = run / "checkpoints" / "last.pt"
    if byte_ops:
        raw = p.read_bytes()
        for op in byte_ops:
            raw = mutate_bytes(raw, op)
        p.write_bytes(raw)
    else:
        state = torch.load(p, weights_only=True)
        path = data.draw(st.sampled_from(sorted(_entries(state), key=str)))
        parent = state
        for k in path[:-1]:
            parent = parent[k]
        if data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(ckpt_values)
        buf = io.BytesIO()
        torch.save(state, buf)
        p.write_bytes(buf.getvalue())
    use(run, tmp, capsys)


byte_ops = st.lists(st.one_of(st.tuples(st.just("truncate"), st.integers(0, 10**6)),
                              st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255))), max_size=2)


@FAST
@given(ops=st.lists(config_ops, min_size=1, max_size=3))
def test_mutated_config(base_run, tmp_path_factory, capsys, ops):
    _mutate_file(base_run, tmp_path_factory, capsys, "config.toml", ops)


@FAST
@given(ops=st.lists(metrics_ops, min_size=1, max_size=3))
def test_mutated_metrics(base_run, tmp_path_factory, capsys, ops):
    _mutate_file(base_run, tmp_path_factory, capsys, "metrics.jsonl", ops)


@FAST
@given(data=st.data(), ops=byte_ops)
def test_mutated_checkpoint(base_run, tmp_path_factory, capsys, data, ops):
    _mutate_checkpoint(base_run, tmp_path_factory, capsys, data, ops)


@pytest.mark.slow
@MANY
@given(ops=st.lists(config_ops, min_size=1, max_size=4))
def test_mutated_config_many(base_run, tmp_path_factory, capsys, ops):
    _mutate_file(base_run, tmp_path_factory, capsys, "config.toml", ops)


@pytest.mark.slow
@MANY
@given(ops=st.lists(metrics_ops, min_size=1, max_size=4))
def test_mutated_metrics_many(base_run, tmp_path_factory, capsys, ops):
    _mutate_file(base_run, tmp_path_factory, capsys, "metrics.jsonl", ops)


@pytest.mark.slow
@MANY
@given(data=st.data(), ops=byte_ops)
def test_mutated_checkpoint_many(base_run, tmp_path_factory, capsys, data, ops):
    _mutate_checkpoint(base_run, tmp_path_factory, capsys, data, ops)
