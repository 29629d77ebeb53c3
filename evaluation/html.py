"""Render an ``EvaluationReport`` as one self-contained HTML page.

Everything is inline (CSS, SVG charts drawn here in Python, a few lines of JS for
collapsible tables), so the page opens offline, can be attached to a ticket or stored
in a catalog, and loads nothing from the network.
"""

from __future__ import annotations

import html
import math
from typing import Any

import pandas as pd

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
main{max-width:1200px;margin:0 auto;padding:24px}
h1{margin:0 0 4px;font-size:26px}h2{margin-top:36px;border-bottom:2px solid #dde1e7;
padding-bottom:4px}
.meta{color:#5b6475;font-size:14px}
#scorecard{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:12px;
margin-top:18px}
.card{background:#fff;border-radius:8px;padding:12px 14px;border-left:6px solid #9aa3b2;
box-shadow:0 1px 2px rgba(0,0,0,.08)}
.card .v{font-size:24px;font-weight:600}.card .n{font-size:12px;color:#5b6475}
.card .h{font-size:11px;color:#7b8494}
.good{border-left-color:#2e9e5b}.warn{border-left-color:#e0a030}.bad{border-left-color:#d1453b}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:8px 0}
td,th{border:1px solid #e1e4ea;padding:3px 8px;text-align:right}
th{background:#eef0f4}td:first-child,th:first-child{text-align:left}
tr.flag td{background:#fde8e6}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(280px,1fr));gap:12px}
.plot{background:#fff;border-radius:8px;padding:8px}
.plot h3{font-size:13px;margin:0 0 4px}.legend span{display:inline-block;width:10px;
height:10px;margin:0 4px 0 10px}
button.toggle{margin:6px 0;font-size:12px}
.hidden{display:none}.note{color:#7b8494;font-size:13px}
"""

JS = """
window.addEventListener('error', function (e) {
  var box = document.getElementById('js-errors');
  if (box) { box.textContent += (e.message || 'error') + '\\n'; }
});
document.addEventListener('DOMContentLoaded', function () {
  document.querySelectorAll('button.toggle').forEach(function (b) {
    b.addEventListener('click', function () {
      var t = document.getElementById(b.getAttribute('data-target'));
      if (t) { t.classList.toggle('hidden'); }
    });
  });
  var cards = document.querySelectorAll('#scorecard .card').length;
  document.body.setAttribute('data-ready', 'yes');
  document.body.setAttribute('data-cards', String(cards));
});
"""

REAL, SYN = "#3b6fb6", "#e07b39"

# name, label, higher_is_better, good threshold, warn threshold
CARDS: list[tuple[str, str, bool | None, float, float]] = [
    ("fidelity.overall", "Fidelity (overall)", True, 0.9, 0.8),
    ("fidelity.column_shapes", "Column shapes", True, 0.9, 0.8),
    ("fidelity.pair_trends", "Column pair trends", True, 0.9, 0.8),
    ("detection.score", "Detection (1 = indistinguishable)", True, 0.6, 0.3),
    ("alpha_precision.alpha_precision", "Alpha-precision", True, 0.9, 0.7),
    ("alpha_precision.beta_recall", "Beta-recall", True, 0.8, 0.6),
    ("fid.tabular", "FID (tabular, lower better)", False, 0.5, 2.0),
    ("privacy.dcr_share", "DCR share (0.5 ideal)", None, 0.6, 0.7),
    ("privacy.mia_auc", "Membership inference AUC", False, 0.55, 0.65),
    ("privacy.exact_copy_rate", "Exact copies", False, 0.001, 0.01),
    ("bias.widened_gaps", "Widened bias gaps", False, 0.0, 1.0),
    ("dp.epsilon", "DP epsilon", None, math.inf, math.inf),
    ("dp.delta", "DP delta", None, math.inf, math.inf),
    ("dp.audit_epsilon_lower_bound", "DP audit: epsilon lower bound", None, math.inf, math.inf),
]


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1e5 else f"{v:.4g}"
    return str(v)


def _grade(name: str, value: float, higher: bool | None, good: float, warn: float) -> str:
    if value is None or math.isnan(value):
        return ""
    if name == "privacy.dcr_share":
        return "good" if value <= good else ("warn" if value <= warn else "bad")
    if higher is None:
        return ""
    if higher:
        return "good" if value >= good else ("warn" if value >= warn else "bad")
    return "good" if value <= good else ("warn" if value <= warn else "bad")


def _scorecard(scores: dict[str, float]) -> str:
    cards = []
    for name, label, higher, good, warn in CARDS:
        if name not in scores:
            continue
        value = scores[name]
        cls = _grade(name, value, higher, good, warn)
        cards.append(
            f'<div class="card {cls}" data-score="{_esc(name)}"><div class="n">'
            f'{_esc(label)}</div><div class="v">{_esc(_fmt(value))}</div>'
            f'<div class="h">{_esc(name)}</div></div>'
        )
    utility = sorted(k for k in scores if k.startswith("utility.tstr_"))
    for key in utility[:3]:
        metric = key[len("utility.tstr_") :]
        trtr = scores.get(f"utility.trtr_{metric}", math.nan)
        cards.append(
            f'<div class="card" data-score="{_esc(key)}"><div class="n">Utility '
            f'{_esc(metric)}: TSTR / TRTR</div><div class="v">{_esc(_fmt(scores[key]))}'
            f' / {_esc(_fmt(trtr))}</div><div class="h">{_esc(key)}</div></div>'
        )
    return '<section id="scorecard">' + "".join(cards) + "</section>"


def _table(
    df: pd.DataFrame, table_id: str, flag_column: str | None = None, hidden: bool = False
) -> str:
    if df is None or len(df) == 0:
        return '<p class="note">No rows.</p>'
    head = "".join(f"<th>{_esc(c)}</th>" for c in df.columns)
    body = []
    for _, row in df.iterrows():
        flag = flag_column is not None and bool(row.get(flag_column))
        cells = "".join(f"<td>{_esc(_fmt(v))}</td>" for v in row.tolist())
        body.append(f'<tr class="flag">{cells}</tr>' if flag else f"<tr>{cells}</tr>")
    cls = ' class="hidden"' if hidden else ""
    out = (
        f'<table id="{_esc(table_id)}"{cls}><thead><tr>{head}</tr></thead><tbody>'
        + "".join(body)
        + "</tbody></table>"
    )
    if hidden:
        out = (
            f'<button class="toggle" data-target="{_esc(table_id)}">show / hide '
            f"{len(df)} rows</button>"
        ) + out
    return out


def _svg_dist(name: str, plot: dict[str, Any], score: float | None) -> str:
    w, h, pad = 260, 120, 18
    title = f"{_esc(name)} <small>({_esc(plot.get('kind', ''))}"
    title += f", shape {_esc(_fmt(score))})</small>" if score is not None else ")</small>"
    if plot.get("type") == "empty":
        return f'<div class="plot"><h3>{title}</h3><p class="note">all null</p></div>'
    real, syn = plot["real"], plot["synthetic"]
    n = len(real)
    top = max(max(real, default=0), max(syn, default=0)) or 1.0
    bw = (w - 2 * pad) / max(n, 1)
    parts = [
        f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">'
        f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#999"/>'
    ]
    for i in range(n):
        x = pad + i * bw
        for j, (vals, color) in enumerate(((real, REAL), (syn, SYN))):
            bh = (h - 2 * pad) * vals[i] / top
            parts.append(
                f'<rect x="{x + j * bw / 2:.1f}" y="{h - pad - bh:.1f}" '
                f'width="{max(bw / 2 - 0.5, 0.5):.1f}" height="{bh:.1f}" '
                f'fill="{color}" opacity="0.85"><title>{j and "synthetic" or "real"}: '
                f"{vals[i]:.3f}</title></rect>"
            )
    if plot["type"] == "hist":
        lo, hi = plot["edges"][0], plot["edges"][-1]
        parts.append(
            f'<text x="{pad}" y="{h - 4}" font-size="10">{_esc(lo)}</text>'
            f'<text x="{w - pad}" y="{h - 4}" font-size="10" text-anchor="end">'
            f"{_esc(hi)}</text>"
        )
    else:
        cats = plot["categories"]
        parts.append(
            f'<text x="{pad}" y="{h - 4}" font-size="10">{_esc(str(cats[0])[:18])}'
            f'</text><text x="{w - pad}" y="{h - 4}" font-size="10" text-anchor="end">'
            f"{len(cats)} categories</text>"
        )
    parts.append("</svg>")
    return f'<div class="plot"><h3>{title}</h3>{"".join(parts)}</div>'


def _heatmap(matrix: dict[str, Any]) -> str:
    cols, values = matrix.get("columns", []), matrix.get("values", [])
    if not cols:
        return '<p class="note">No column pairs.</p>'
    cell, left, top = 22, 150, 150
    size = len(cols) * cell
    parts = [
        f'<svg id="pair-heatmap" width="{left + size + 10}" height="{top + size + 10}" role="img">'
    ]
    for i, c in enumerate(cols):
        parts.append(
            f'<text x="{left - 4}" y="{top + i * cell + 15}" font-size="11" '
            f'text-anchor="end">{_esc(str(c)[:22])}</text>'
        )
        parts.append(
            f'<text transform="translate({left + i * cell + 15},{top - 4}) '
            f'rotate(-60)" font-size="11">{_esc(str(c)[:22])}</text>'
        )
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if v is None:
                fill, label = "#eeeeee", "n/a"
            else:
                t = max(0.0, min(1.0, v * 4))  # 0.25 difference is already full red
                g = int(255 - 180 * t)
                fill, label = f"rgb(255,{g},{g})", f"{v:.3f}"
            parts.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" '
                f'height="{cell - 1}" fill="{fill}"><title>{_esc(cols[i])} / '
                f"{_esc(cols[j])}: {label}</title></rect>"
            )
    parts.append("</svg>")
    return "".join(parts)


def render(report: Any) -> str:
    """The whole page as a string."""
    s, d, meta, plots = report.scores, report.details, report.meta, report.plots
    rows = meta.get("rows", {})
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>synthgen evaluation report</title>",
        f"<style>{CSS}</style></head><body><main>",
        "<h1>Synthetic data evaluation</h1>",
        f'<div class="meta">real {_esc(rows.get("real"))} rows, synthetic '
        f"{_esc(rows.get('synthetic'))} rows, holdout {_esc(rows.get('holdout'))} rows; "
        f"target {_esc(meta.get('target'))}; sensitive {_esc(meta.get('sensitive'))}; "
        f"seed {_esc(meta.get('seed'))}; created {_esc(meta.get('created'))}</div>",
        _scorecard(s),
        '<pre id="js-errors" class="note"></pre>',
    ]
    if meta.get("skipped"):
        out.append(
            "<p class='note'>Skipped: "
            + "; ".join(f"{_esc(k)} ({_esc(v)})" for k, v in meta["skipped"].items())
            + "</p>"
        )
    out.append("<h2>All scores</h2>")
    out.append(_table(pd.DataFrame({"score": list(s), "value": list(s.values())}), "all-scores"))
    if "distributions" in plots:
        shapes = d.get("fidelity.column_shapes")
        by_col = (
            dict(zip(shapes["column"], shapes["score"], strict=True))
            if shapes is not None and len(shapes)
            else {}
        )
        out.append(
            f'<h2 id="distributions">Column distributions</h2><div class="legend">'
            f'<span style="background:{REAL}"></span>real<span style="background:{SYN}">'
            f'</span>synthetic</div><div class="grid">'
        )
        out.extend(
            _svg_dist(name, p, by_col.get(name)) for name, p in plots["distributions"].items()
        )
        out.append("</div>")
    if "pair_matrix" in plots:
        out.append(
            '<h2 id="pairs">Column pair trend difference</h2><p class="note">1 - pair '
            "similarity (correlation for two numerical columns, contingency otherwise); "
            "white = trend kept, red = trend lost.</p>"
        )
        out.append(_heatmap(plots["pair_matrix"]))
        if "fidelity.pair_trends" in d:
            out.append(_table(d["fidelity.pair_trends"], "pair-table", hidden=True))
    if "utility.models" in d:
        out.append('<h2 id="utility">Utility (TSTR vs TRTR)</h2>')
        table = d["utility.models"].pivot(index="metric", columns="model", values="value")
        out.append(_table(table.reset_index(), "utility-table"))
    if "bias.groups" in d:
        out.append(
            '<h2 id="bias">Bias</h2><p class="note">Rows in red: the synthetic data '
            "(or the model trained on it) widens the gap by more than the tolerance. "
            "For fairness measures 'real' is the TRTR model, 'synthetic' the TSTR "
            "model.</p>"
        )
        out.append(_table(d.get("bias.gaps"), "bias-gaps", flag_column="widened"))
        out.append(_table(d["bias.groups"], "bias-groups"))
    priv = {k: v for k, v in s.items() if k.startswith("privacy.")}
    if priv:
        out.append('<h2 id="privacy">Privacy risk</h2>')
        out.append(
            _table(
                pd.DataFrame({"measure": list(priv), "value": list(priv.values())}), "privacy-table"
            )
        )
        if "privacy.dcr_reference" in d:
            out.append(
                "<p class='note'>DCR share: each synthetic row's distance to the closest "
                "training row against the closest holdout row, measured on equally many "
                "rows of each (the larger table is subsampled, seeded), so 0.5 is ideal "
                "whatever the split.</p>"
            )
            out.append(_table(d["privacy.dcr_reference"], "privacy-dcr-reference"))
        if "privacy.distances" in d:
            out.append(_table(d["privacy.distances"], "privacy-distances"))
    if "dp.accounting" in d:
        out.append('<h2 id="dp">Differential privacy accounting</h2>')
        out.append(_table(d["dp.accounting"], "dp-table"))
    if "dp.audit" in d:
        out.append('<h2 id="dp-audit">Differential privacy audit (one-run canaries)</h2>')
        out.append(
            "<p>Steinke, Nasr and Jagielski (2023): canaries inserted with probability 1/2 "
            "in one training run; the epsilon lower bound is what the correct membership "
            "guesses prove. It must stay below the claimed epsilon.</p>"
        )
        out.append(_table(d["dp.audit"], "dp-audit-table"))
    timings = meta.get("timings_s", {})
    if timings:
        out.append(
            "<p class='note'>Section timings (s): "
            + ", ".join(f"{_esc(k)} {_esc(v)}" for k, v in timings.items())
            + "</p>"
        )
    out.append(f"</main><script>{JS}</script></body></html>")
    return "\n".join(out)
