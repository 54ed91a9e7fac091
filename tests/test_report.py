"""`gankit report`: one self-contained HTML page (no reference that could fetch anything), showing the config,
one curve per logged quantity, one slider frame per sample picture, the run's figures and results, and the
differences between runs; and, in headless Chromium, a page that loads cleanly and whose slider works."""

import base64
import io
import json
import re
import shutil
from pathlib import Path
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from gankit import report, rundir
from gankit.cli import main

TINY = ["--dataset", "ring8", "--steps", "40", "--hidden", "16", "--layers", "1", "--batch-size", "32",
        "--log-every", "10", "--sample-every", "10", "--checkpoint-every", "1000", "--no-progress"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny real runs that differ in lr; the first also holds a figure, as `gankit sample` would put there."""
    root = tmp_path_factory.mktemp("report")
    a, b = root / "lr-1e-3", root / "lr-3e-4"
    assert main(["train", "--out", str(a), *TINY]) == 0
    assert main(["train", "--out", str(b), "--lr", "3e-4", *TINY]) == 0
    shutil.copy(a / "samples" / "step-00000040.png", a / "fig2.png")
    return a, b


class Page(HTMLParser):
    """Every tag with its attributes, in order."""

    def __init__(self, text):
        super().__init__()
        self.tags = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def imgs(self, cls=None):
        return [a for t, a in self.tags if t == "img" and (cls is None or cls in a.get("class", "").split())]


def page_of(*run_dirs, **kw):
    text = report.render([report.read_run(d) for d in run_dirs], **kw)
    return text, Page(text)


def png_of(uri: str) -> bytes:
    assert uri.startswith("data:image/png;base64,")
    return base64.b64decode(uri.split(",", 1)[1])


# --- the HTML, without a browser -------------------------------------------------------------------------

def test_nothing_can_be_fetched(runs):
    text, page = page_of(*runs)
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "poster", "data", "action"):
            if name in attrs:
                assert attrs[name].startswith(("data:", "#")), (tag, name, attrs[name][:60])
        assert tag not in ("link", "iframe", "object", "embed", "base"), tag
        assert not (tag == "script" and "src" in attrs)
    assert "url(" not in text and "@import" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", text)
    csp = [a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]


def test_every_slider_frame_is_a_sample_picture_in_order(runs):
    _, page = page_of(*runs)
    sliders = [a for t, a in page.tags if t == "input" and a.get("type") == "range"]
    frames = page.imgs("frame")
    assert len(sliders) == 2
    start = 0
    for run, slider in zip(runs, sliders):
        files = sorted((run / "samples").glob("step-*.png"))
        mine = frames[start:start + len(files)]
        start += len(files)
        assert len(files) == 4 and int(slider["max"]) == len(files) - 1 == int(slider["value"])
        assert [int(f["data-step"]) for f in mine] == [10, 20, 30, 40]
        assert [png_of(f["src"]) for f in mine] == [p.read_bytes() for p in files]  # the pictures, byte for byte
        assert ["hidden" in f for f in mine] == [True] * (len(files) - 1) + [False]  # the last shown first
    assert start == len(frames)


def test_frames_are_capped_evenly_keeping_first_and_last(runs):
    _, page = page_of(runs[0], max_frames=3)
    assert [int(f["data-step"]) for f in page.imgs("frame")] == [10, 30, 40]  # round(i * 3 / 2): 0, 2, 3
    samples = [(s, None) for s in range(0, 100, 10)]
    assert [s for s, _ in report.frames(samples, 4)] == [0, 30, 60, 90]
    assert report.frames(samples, 1) == samples[-1:] and report.frames(samples, 50) == samples


def test_the_config_is_shown_and_the_difference_highlighted(runs):
    text, _ = page_of(*runs)
    table = text[text.index("id='config-table'"):]
    rows = re.findall(r"<tr( class='differs')?><td class='key'[^>]*>([^<]+)</td>(.*?)</tr>", table)
    shown = {key: (bool(cls), re.findall(r"<td>([^<]*)</td>", cells)) for cls, key, cells in rows}
    cfgs = [rundir.read_config(r).to_dict() for r in runs]
    assert set(shown) == set(cfgs[0])  # every key of the resolved config
    assert shown["lr"] == (True, ["0.001", "0.0003"])
    assert shown["dataset"] == (False, ["ring8", "ring8"]) and shown["steps"] == (False, ["40", "40"])
    assert {k for k, (differs, _) in shown.items() if differs} == {"lr"}  # the run directory aside
    assert report.differing_keys([report.read_run(r) for r in runs]) == ["lr"]


def test_one_overlaid_curve_per_logged_quantity(runs):
    _, page = page_of(*runs)
    curves = [a for t, a in page.tags if t == "img" and a["alt"] in report.LABELS.values()]
    logged = [k for k in rundir.read_metrics(runs[0])[0] if k not in ("step", "epoch", "seconds")]
    assert sorted(c["alt"] for c in curves) == sorted(report.LABELS[k] for k in logged)  # d_loss ... jsd, w1
    for c in curves:
        with Image.open(io.BytesIO(png_of(c["src"]))) as im:
            assert im.size == (460, 290)


def test_figures_and_results_of_the_run(runs):
    text, page = page_of(runs[0])
    figures = [a for a in page.imgs() if a["alt"] == "fig2.png"]
    assert len(figures) == 1 and png_of(figures[0]["src"]) == (runs[0] / "fig2.png").read_bytes()
    assert not [a for a in page.imgs() if a["alt"] == "losses.png"]  # redrawn as curves, not repeated
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert f"<td class='key'>modes.modes_covered</td><td>{summary['modes']['modes_covered']}</td>" in text
    assert "id='config-table'" in text and "id='only-diff'" not in text  # one run: no comparison


def test_an_unreadable_picture_is_left_out_and_said(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs[0], run, ignore=shutil.ignore_patterns(".lock"))
    (run / "samples" / "step-00000020.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    text, page = page_of(run)
    assert [int(f["data-step"]) for f in page.imgs("frame")] == [10, 30, 40]
    assert "not readable PNGs, left out: step-00000020.png" in text


def test_cli_writes_the_page_and_refuses_what_is_not_a_run(runs, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert report.write_report(runs[0], tmp_path / "api.html") == tmp_path / "api.html"
    for args, fragment in (([str(tmp_path)], "is not a gankit run directory (no config.toml)"),
                           ([str(tmp_path / "nope")], "is not a gankit run directory"),
                           ([str(runs[0]), "--out", str(tmp_path / "r.txt")], "--out must end in .html"),
                           ([str(runs[0]), "--max-frames", "0"], "--max-frames must be in")):
        capsys.readouterr()
        assert main(["report", *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("gankit: error:") and fragment in err[0], err


# --- the page in headless Chromium -----------------------------------------------------------------------

def browser_or_skip():
    from browser import Browser, find_chromium

    if find_chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    return Browser(width=1280, height=900)


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as im:
        return np.asarray(im.convert("L"), dtype=np.float64)


def test_the_page_in_chromium(runs, tmp_path):
    """Loads with no console error and no fetch, every image decodes, the slider changes the shown picture
    (and, linked, the other run's), the only-differences switch works, and the page is not blank."""
    out = report.write_report(runs, tmp_path / "report.html")
    with browser_or_skip() as b:
        b.open(out.as_uri())
        imgs = b.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])")
        assert len(imgs) == 2 * 4 + 8 + 1  # two runs' pictures, eight curves (r1 among them), one figure
        assert all(complete and width > 0 for complete, width, _ in imgs), [a for c, w, a in imgs if not w]
        shown = ("Array.from(document.querySelectorAll('.frames')).map(f => "
                 "[f.querySelector('img.frame:not([hidden])').dataset.step, f.querySelector('.frame-label').textContent])")
        assert b.evaluate(shown) == [["40", "step 40  (4/4)"]] * 2
        b.evaluate("document.getElementById('samples').scrollIntoView()")
        before = pixels(b.screenshot())
        b.evaluate("document.querySelector('.slider').focus()")
        b.press("Home")  # a real key press on the first run's slider
        assert b.evaluate(shown) == [["10", "step 10  (1/4)"]] * 2  # the linked slider followed
        b.press("ArrowRight")
        assert b.evaluate(shown) == [["20", "step 20  (2/4)"]] * 2
        after = pixels(b.screenshot())
        assert np.abs(after - before).mean() > 1  # the shown grids changed on screen
        rows = ("Array.from(document.querySelectorAll('#config-table tr'))"
                ".filter(r => getComputedStyle(r).display !== 'none').length")
        n_rows = b.evaluate(rows)
        b.evaluate("document.getElementById('only-diff').click()")
        assert b.evaluate(rows) == 2 and n_rows > 40  # the header and lr
        b.evaluate("window.scrollTo(0, 0)")
        top = pixels(b.screenshot())
        assert top.std() > 20 and after.std() > 20  # not blank
        assert b.errors == []
        assert all(u.startswith(("file:", "data:")) for u in b.requests), b.requests


def test_an_ensembles_member_values_are_not_curves_of_their_own():
    rows = [{"step": 100, "d_loss": 1.0, "valid_modes": 7.5, "valid_modes:member0": 7.0, "valid_modes:member1": 8.0}]
    view = report.RunView(path=Path("."), name="e", config={}, rows=rows, samples=[], figures=[])
    keys = report.curve_keys([view])
    assert "valid_modes" in keys and "d_loss" in keys
    assert not any(":member" in k for k in keys)
