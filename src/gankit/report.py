"""`gankit report`: one self-contained HTML page of one or more runs, to look at and to compare.

The page holds the resolved config, the logged curves, the sample pictures over training behind a slider,
every other figure in the run directory and the run's results (summary.json, eval.json, ...). Every image is
inlined as a data: URI and a Content-Security-Policy forbids any fetch, so the file opens anywhere, offline,
and can be mailed or archived as it is. Given several runs, the config table highlights where they differ,
the curves are overlaid and the sliders can move together.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from gankit import rundir
from gankit.config import help_of
from gankit.errors import UsageError, on_disk

__all__ = ["write_report", "render", "read_run", "RunView"]

MAX_FRAMES = 60  # sample pictures per run on the slider (evenly chosen, always the last)
SKIP_DIRS = {"samples", "checkpoints", "tensorboard"}  # not figures: shown otherwise or not pictures
SKIP_FIGURES = {"losses.png"}  # the curves are drawn here, overlaid across runs
LABELS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "mean D(x)", "d_fake": "mean D(G(z))",
          "value": "V(D, G) on the minibatch", "critic_real": "mean D(x), raw", "critic_fake": "mean D(G(z)), raw",
          "wasserstein": "critic's W1 estimate", "gp": "gradient penalty", "r1": "R1 penalty", "r2": "R2 penalty",
          "jsd": "JSD to p_data (nats)", "w1": "W1 to p_data"}
NOT_CURVES = ("step", "epoch", "seconds")
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")
_STEP = re.compile(r"step-(\d+)\.png$")


@dataclass
class RunView:
    """What the report shows of one run directory, read and validated."""

    path: Path
    name: str
    config: dict
    rows: list[dict]
    samples: list[tuple[int, Path]]  # (step, picture), by step
    figures: list[Path]
    results: dict[str, dict] = field(default_factory=dict)  # JSON file name -> its object
    notes: dict[str, str] = field(default_factory=dict)  # Markdown/text file name -> its text


def read_run(path: str | Path) -> RunView:
    """A run directory's config, metrics, pictures and results; a RunDirError naming it when it holds no run."""
    path = Path(path)
    cfg = rundir.read_config(path)  # "... is not a gankit run directory (no config.toml)" otherwise
    samples = sorted((int(m.group(1)), p) for p in (path / "samples").glob("step-*.png")
                     if (m := _STEP.search(p.name)))
    figures = sorted(p for p in path.rglob("*.png") if p.is_file() and p.name not in SKIP_FIGURES
                     and not SKIP_DIRS & set(p.relative_to(path).parts[:-1]))
    results = {}
    for name in ["summary.json", "eval.json", *sorted(p.name for p in path.glob("*.json"))]:
        if name not in results and (path / name).is_file():
            results[name] = rundir.read_json(path, name)
    notes = {}
    for p in sorted(path.glob("*.md")):
        with on_disk("read", p):
            notes[p.name] = p.read_text(errors="replace")
    return RunView(path, path.resolve().name, cfg.to_dict(), rundir.read_metrics(path), samples, figures, results,
                   notes)


def write_report(run_dirs, out: str | Path = "report.html", max_frames: int = MAX_FRAMES) -> Path:
    """Write the HTML report of `run_dirs` (one path or several) to `out`; returns its path."""
    run_dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    page = render([read_run(d) for d in run_dirs], max_frames)
    out = Path(out)
    with on_disk("write", out):
        out.write_text(page, encoding="utf-8")
    return out


# --- pieces of the page ---------------------------------------------------------------------------------

def _e(v) -> str:
    return html.escape(str(v), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png(path: Path) -> bytes | None:
    """A PNG file's bytes when it is one Pillow can decode; None otherwise (it is listed, not shown)."""
    from PIL import Image

    try:
        with on_disk("read", path):
            raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as im:
            if im.format != "PNG":
                return None
            im.load()
        return raw
    except (OSError, SyntaxError, ValueError):
        return None


def _img(path: Path, alt: str, attrs: str = "") -> str:
    raw = _png(path)
    if raw is None:
        return f'<p class="bad">{_e(path.name)}: not a readable PNG, left out</p>'
    return f'<img src="{data_uri(raw)}" alt="{_e(alt)}"{attrs}>'


def _fmt(v) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if v is not None else "—"
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, (dict, list)):
        text = json.dumps(v)
        return text if len(text) <= 160 else text[:157] + "..."
    return str(v)


def _flat(obj: dict, prefix: str = "") -> dict:
    """Nested results as dotted keys ('modes.modes_covered'); lists stay values."""
    out = {}
    for k, v in obj.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _swatch(i: int) -> str:
    return f'<span class="swatch" style="background:{COLORS[i % len(COLORS)]}"></span>'


def curve_keys(runs: list[RunView]) -> list[str]:
    """The logged quantities, in the objectives' order, then any others (in first-seen order); an ensemble's
    per-member values (`valid_modes:member3`) stay in metrics.jsonl, the curve shows their mean."""
    seen: list[str] = []
    for r in runs:
        for row in r.rows[:1]:
            seen += [k for k in row if k not in NOT_CURVES and k not in seen and ":member" not in k]
    known = [k for k in LABELS if k in seen]
    return known + [k for k in seen if k not in known]


def curve_png(key: str, runs: list[RunView]) -> bytes:
    """One quantity over training steps, one line per run (the run's colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.6, 2.9))
    for i, r in enumerate(runs):
        pts = [(row["step"], row[key]) for row in r.rows if key in row]
        if pts:
            ys = [y if math.isfinite(y) else math.nan for _, y in pts]
            ax.plot([s for s, _ in pts], ys, color=COLORS[i % len(COLORS)], lw=1.4, label=r.name,
                    marker="." if len(pts) < 3 else None)
    if key in ("d_real", "d_fake"):
        ax.axhline(0.5, color="gray", ls=":", lw=1)
    if key == "jsd":
        ax.axhline(math.log(2), color="gray", ls=":", lw=1)
    ax.set_title(LABELS.get(key, key), fontsize=10)
    ax.set_xlabel("step", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def frames(samples: list[tuple[int, Path]], max_frames: int) -> list[tuple[int, Path]]:
    """At most `max_frames` pictures, evenly spread over training, always including the first and the last."""
    if len(samples) <= max_frames:
        return samples
    if max_frames == 1:
        return samples[-1:]
    idx = sorted({round(i * (len(samples) - 1) / (max_frames - 1)) for i in range(max_frames)})
    return [samples[i] for i in idx]


def _status(r: RunView) -> str:
    s = r.results.get("summary.json", {})
    if not s:
        return "no summary (running, or stopped hard)"
    if s.get("diverged"):
        return f"diverged at step {s.get('step')}"
    state = "interrupted" if s.get("interrupted") else "finished"
    secs = s.get("seconds")
    return f"{state}: step {s.get('step')} of {s.get('total_steps')}" + (f" in {secs:.0f} s" if
                                                                         isinstance(secs, (int, float)) else "")


def _runs_section(runs: list[RunView]) -> str:
    rows = "".join(
        f"<tr><td>{_swatch(i)}<b>{_e(r.name)}</b></td><td>{_e(r.config['dataset'])}</td><td>{_e(r.config['model'])}"
        f"</td><td>{_e(r.config['objective'])}</td><td>{_e(_status(r))}</td><td class='path'>{_e(r.path)}</td></tr>"
        for i, r in enumerate(runs))
    differ = (f"<p>Config differences: <b>{_e(', '.join(differing_keys(runs)) or 'none')}</b> "
              f"(<a href='#config'>config</a>)</p>" if len(runs) > 1 else "")
    return (f"<section id='runs'><h2>Run{'s' if len(runs) > 1 else ''}</h2><table><tr><th>run</th><th>dataset</th>"
            f"<th>model</th><th>objective</th><th>status</th><th>directory</th></tr>{rows}</table>{differ}</section>")


def differing_keys(runs: list[RunView]) -> list[str]:
    """Config keys whose values differ between the runs (the run directory itself aside)."""
    keys = [k for k in runs[0].config if k != "out"]
    return [k for k in keys if len({json.dumps(r.config.get(k)) for r in runs}) > 1]


def _config_section(runs: list[RunView]) -> str:
    differ = set(differing_keys(runs)) if len(runs) > 1 else set()
    keys = list(dict.fromkeys(k for r in runs for k in r.config))
    head = "".join(f"<th>{_swatch(i)}{_e(r.name)}</th>" for i, r in enumerate(runs))
    body = []
    for k in keys:
        try:
            tip = help_of(k)
        except StopIteration:
            tip = ""
        cells = "".join(f"<td>{_e(_fmt(r.config.get(k)))}</td>" for r in runs)
        cls = " class='differs'" if k in differ else ""
        body.append(f"<tr{cls}><td class='key' title='{_e(tip)}'>{_e(k)}</td>{cells}</tr>")
    note = ""
    if len(runs) > 1:
        note = (f"<p>Differences (highlighted): <b>{_e(', '.join(sorted(differ)) or 'none')}</b>. "
                f"<label><input type='checkbox' id='only-diff'> show only the differences</label></p>")
    return (f"<section id='config'><h2>Config</h2>{note}<table id='config-table'><tr><th>key</th>{head}</tr>"
            f"{''.join(body)}</table></section>")


def _curves_section(runs: list[RunView]) -> str:
    keys = curve_keys(runs)
    if not keys:
        return "<section id='curves'><h2>Curves</h2><p>No metrics logged yet.</p></section>"
    imgs = "".join(f'<figure class="curve"><img src="{data_uri(curve_png(k, runs))}" alt="{_e(LABELS.get(k, k))}">'
                   f"</figure>" for k in keys)
    return f"<section id='curves'><h2>Curves</h2><div class='grid'>{imgs}</div></section>"


def _samples_section(runs: list[RunView], max_frames: int) -> str:
    boxes = []
    for i, r in enumerate(runs):
        chosen = frames(r.samples, max_frames)
        loaded = [(step, p, raw) for step, p in chosen if (raw := _png(p)) is not None]
        bad = [p.name for step, p in chosen if all(p != q for _, q, _ in loaded)]
        if not loaded:
            boxes.append(f"<div class='run-col'><h3>{_swatch(i)}{_e(r.name)}</h3><p>No sample pictures.</p></div>")
            continue
        last = len(loaded) - 1
        imgs = "".join(f'<img src="{data_uri(raw)}" alt="{_e(r.name)}, samples at step {step}" class="frame" '
                       f'data-step="{step}"' + ("" if j == last else " hidden") + ">"
                       for j, (step, p, raw) in enumerate(loaded))
        more = f" ({len(r.samples)} pictures; {len(loaded)} shown)" if len(loaded) < len(r.samples) else ""
        note = f"<p class='bad'>not readable PNGs, left out: {_e(', '.join(bad))}</p>" if bad else ""
        boxes.append(
            f"<div class='run-col'><h3>{_swatch(i)}{_e(r.name)}</h3><div class='frames'>"
            f"<div class='frame-head'><input type='range' class='slider' min='0' max='{last}' value='{last}' "
            f"aria-label='sample picture of {_e(r.name)}'> <span class='frame-label'></span>{_e(more)}</div>"
            f"{imgs}</div>{note}</div>")
    link = ("<p><label><input type='checkbox' id='link-sliders' checked> move the sliders together (by step)</label>"
            "</p>" if sum(1 for r in runs if r.samples) > 1 else "")
    return (f"<section id='samples'><h2>Samples over training</h2>{link}<div class='side-by-side'>{''.join(boxes)}"
            f"</div></section>")


def _figures_section(runs: list[RunView]) -> str:
    cols = []
    for i, r in enumerate(runs):
        if r.figures:
            figs = "".join(f"<figure>{_img(p, str(p.relative_to(r.path)))}<figcaption>"
                           f"{_e(p.relative_to(r.path))}</figcaption></figure>" for p in r.figures)
            cols.append(f"<div class='run-col'><h3>{_swatch(i)}{_e(r.name)}</h3>{figs}</div>")
    if not cols:
        return ""
    return f"<section id='figures'><h2>Figures</h2><div class='side-by-side'>{''.join(cols)}</div></section>"


def _results_section(runs: list[RunView]) -> str:
    names = list(dict.fromkeys(n for r in runs for n in r.results))
    parts = []
    for name in names:
        flat = [_flat(r.results.get(name, {})) for r in runs]
        keys = [k for k in dict.fromkeys(k for f in flat for k in f) if k != "run_dir"]
        if not keys:
            continue
        head = "".join(f"<th>{_swatch(i)}{_e(r.name)}</th>" for i, r in enumerate(runs))
        body = "".join(f"<tr><td class='key'>{_e(k)}</td>"
                       + "".join(f"<td>{_e(_fmt(f[k])) if k in f else ''}</td>" for f in flat) + "</tr>"
                       for k in keys)
        parts.append(f"<h3>{_e(name)}</h3><table class='results'><tr><th>key</th>{head}</tr>{body}</table>")
    for i, r in enumerate(runs):
        for name, text in r.notes.items():
            parts.append(f"<h3>{_swatch(i)}{_e(r.name)}: {_e(name)}</h3><pre>{_e(text)}</pre>")
    if not parts:
        return ""
    return f"<section id='results'><h2>Results</h2>{''.join(parts)}</section>"


CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:0 20px 40px;max-width:1400px;
color:#222;background:#fff}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
h3{font-size:15px;margin:10px 0 6px}
nav a{margin-right:14px;color:#1f5fa8;text-decoration:none}
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #e2e2e2;padding:3px 8px;text-align:left;
vertical-align:top}th{background:#f5f5f5}
td.key{font-family:ui-monospace,monospace;white-space:nowrap}td.path{font-family:ui-monospace,monospace;color:#666}
tr.differs td{background:#fff3b0;font-weight:600}
#config-table.only-diff tr:not(.differs):not(:first-child){display:none}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:6px}
.grid img{width:100%;height:auto}
figure{margin:0 0 12px}figcaption{font-size:12px;color:#666}
.side-by-side{display:grid;grid-template-columns:repeat(auto-fit,minmax(360px,1fr));gap:16px}
.run-col img{max-width:100%;height:auto;image-rendering:auto;border:1px solid #eee}
.frame-head{display:flex;align-items:center;gap:10px;margin-bottom:6px}
.slider{flex:1;max-width:420px}.frame-label{font-family:ui-monospace,monospace;white-space:nowrap}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px;vertical-align:-1px}
pre{background:#f7f7f7;padding:8px;overflow-x:auto}.bad{color:#b00}
"""

JS = """
(function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll('.frames'));
  function show(box) {
    var imgs = box.querySelectorAll('img.frame'), s = box.querySelector('.slider'), i = +s.value;
    for (var j = 0; j < imgs.length; j++) imgs[j].hidden = j !== i;
    box.querySelector('.frame-label').textContent =
      'step ' + imgs[i].getAttribute('data-step') + '  (' + (i + 1) + '/' + imgs.length + ')';
  }
  function follow(step, box) {  /* the last picture at or before `step` (else the first) */
    var imgs = box.querySelectorAll('img.frame'), best = 0;
    for (var j = 0; j < imgs.length; j++) if (+imgs[j].getAttribute('data-step') <= step) best = j;
    box.querySelector('.slider').value = best; show(box);
  }
  var link = document.getElementById('link-sliders');
  boxes.forEach(function (box) {
    var s = box.querySelector('.slider');
    s.addEventListener('input', function () {
      show(box);
      if (link && link.checked) {
        var step = +box.querySelectorAll('img.frame')[+s.value].getAttribute('data-step');
        boxes.forEach(function (other) { if (other !== box) follow(step, other); });
      }
    });
    show(box);
  });
  var only = document.getElementById('only-diff');
  if (only) only.addEventListener('change', function () {
    document.getElementById('config-table').classList.toggle('only-diff', only.checked);
  });
})();
"""

# Nothing may be fetched: images are data: URIs, style and script are inline.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def render(runs: list[RunView], max_frames: int = MAX_FRAMES) -> str:
    """The page as one HTML string."""
    if not runs:
        raise UsageError("report: give at least one run directory")
    if max_frames < 1:
        raise UsageError(f"report: max_frames must be >= 1, got {max_frames}")
    title = "gankit report: " + ", ".join(r.name for r in runs)
    sections = [_runs_section(runs), _curves_section(runs), _samples_section(runs, max_frames), _results_section(runs),
                _figures_section(runs), _config_section(runs)]
    nav = "".join(f"<a href='#{sid}'>{sid}</a>" for sid in ("runs", "curves", "samples", "results", "figures", "config")
                  if f"id='{sid}'" in "".join(sections))
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{_e(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1><nav>{nav}</nav>{''.join(sections)}"
            f"<script>{JS}</script></body></html>\n")
