"""``ImageReport``: the scores of an image evaluation, which extractor made them, and a page.

An image score is a number in some feature space, so the report always carries the
``extractor`` block (kind, name, digest, input shape): two FIDs are comparable only
when their digests are equal. The JSON document is versioned
(``{"format": "synthgen.image_evaluation", "version": 1}``); non-finite numbers are
stored as ``null``. The HTML page is self-contained: the house CSS, a scores table,
the extractor, and a sample grid (one row of synthetic images per class and a row of
real ones) embedded as a base64 PNG.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from synthgen.errors import DataError
from synthgen.images.data import ImageSet
from synthgen.paths import atomic_path, check_writable

if TYPE_CHECKING:
    from PIL import Image as PILImage

    from evaluation.images.extractor import ImageFeatureExtractor

__all__ = ["FORMAT", "VERSION", "ImageReport", "grid_png", "sample_grid"]

FORMAT = "synthgen.image_evaluation"
VERSION = 1
#: Smallest side of one grid cell in pixels (8x8 digits are drawn 4x larger).
CELL = 32
GAP = 2
LABEL_WIDTH = 56
BACKGROUND = (246, 247, 249)
EMPTY = (225, 228, 234)

# name, label, higher_is_better (None: no grading), good, warn
CARDS: list[tuple[str, str, bool | None, float, float]] = [
    ("fid.image", "FID (lower better)", None, math.inf, math.inf),
    ("fid.real_vs_real", "FID real vs real (the floor)", None, math.inf, math.inf),
    ("kid.mean", "KID (lower better)", None, math.inf, math.inf),
    ("prc.precision", "Precision", True, 0.8, 0.6),
    ("prc.recall", "Recall", True, 0.8, 0.6),
    ("classifier.synthetic_accuracy", "Synthetic images classified as their label", True, 0.9, 0.7),
    ("classifier.holdout_accuracy", "Holdout accuracy of the extractor", True, 0.95, 0.85),
    ("utility.augmentation_gain", "Augmentation gain (accuracy)", True, 0.0, -0.02),
]


# --------------------------------------------------------------------- the sample grid
def _pick_real_row(reference: ImageSet, count: int) -> list[int]:
    """Up to ``count`` real images, one class after another (a comparison across classes)."""
    pools = [list(np.flatnonzero(reference.labels == k)) for k in range(reference.schema.n_classes)]
    chosen: list[int] = []
    while len(chosen) < count and any(pools):
        for pool in pools:
            if pool and len(chosen) < count:
                chosen.append(int(pool.pop(0)))
    return chosen


def _cell(pixels: np.ndarray, size: int) -> PILImage.Image:
    """One image (``c x h x w`` uint8) as an RGB tile of ``size`` pixels high, nearest-neighbour."""
    from PIL import Image

    c, h, w = pixels.shape
    picture = (
        Image.fromarray(pixels[0], mode="L").convert("RGB")
        if c == 1
        else Image.fromarray(np.transpose(pixels, (1, 2, 0)), mode="RGB")
    )
    return picture.resize((max(1, round(size * w / h)), size), Image.NEAREST)


def sample_grid(
    images: ImageSet, per_class: int = 8, reference: ImageSet | None = None
) -> PILImage.Image:
    """A PIL image: one row per class with up to ``per_class`` of ``images`` each.

    With ``reference`` (the real images) a last row, labelled "real", shows up to
    ``per_class`` real images taken one class after another. Rows are labelled with the
    class names; a class without images shows empty cells.
    """
    from PIL import Image, ImageDraw

    if not isinstance(images, ImageSet):
        raise DataError(f"sample_grid needs an ImageSet, not {type(images).__name__}")
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise DataError(f"per_class={per_class!r} must be a whole number >= 1")
    _, h, w = images.schema.shape
    size = max(CELL, h)
    cell_w = max(1, round(size * w / h))
    pixels = images.to_uint8()
    rows: list[tuple[str, list[np.ndarray]]] = []
    for code, name in enumerate(images.schema.classes):
        members = np.flatnonzero(images.labels == code)[:per_class]
        rows.append((name, [pixels[i] for i in members]))
    if reference is not None:
        real = reference.to_uint8()
        rows.append(("real", [real[i] for i in _pick_real_row(reference, per_class)]))
    width = LABEL_WIDTH + per_class * (cell_w + GAP) + GAP
    height = len(rows) * (size + GAP) + GAP + (2 * GAP if reference is not None else 0)
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    y = GAP
    for index, (label, tiles) in enumerate(rows):
        if reference is not None and index == len(rows) - 1:
            y += 2 * GAP
            draw.line([(0, y - GAP - 1), (width, y - GAP - 1)], fill=(120, 128, 140))
        draw.text((4, y + size // 2 - 6), str(label)[:8], fill=(29, 35, 48))
        for column in range(per_class):
            x = LABEL_WIDTH + GAP + column * (cell_w + GAP)
            if column < len(tiles):
                canvas.paste(_cell(tiles[column], size), (x, y))
            else:
                draw.rectangle([x, y, x + cell_w - 1, y + size - 1], fill=EMPTY)
        y += size + GAP
    return canvas


def grid_png(images: ImageSet, per_class: int = 8, reference: ImageSet | None = None) -> bytes:
    """:func:`sample_grid` as PNG bytes (what the HTML page embeds)."""
    buffer = io.BytesIO()
    sample_grid(images, per_class, reference).save(buffer, format="PNG")
    return buffer.getvalue()


# --------------------------------------------------------------------- JSON helpers
def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_text(path: str | Path, text: str) -> None:
    with atomic_path(path, "report") as tmp:
        tmp.write_text(text, encoding="utf-8")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return " x ".join(map(str, value)) if all(isinstance(v, int) for v in value) else str(value)
    return str(value)


def _grade(value: float, higher: bool | None, good: float, warn: float) -> str:
    if higher is None or value is None or math.isnan(value):
        return ""
    if higher:
        return "good" if value >= good else ("warn" if value >= warn else "bad")
    return "good" if value <= good else ("warn" if value <= warn else "bad")


# --------------------------------------------------------------------- the report
@dataclass
class ImageReport:
    """Result of :func:`evaluation.images.evaluate_images`.

    ``scores``: flat ``name -> float`` (``fid.image``, ``kid.mean``, ``kid.std``,
    ``prc.precision``, ``prc.recall``, ``prc.f_score``; with a holdout
    ``fid.real_vs_real``, ``classifier.holdout_accuracy`` and the ``utility.*``
    scores; ``classifier.synthetic_accuracy``). ``extractor_info``: the feature space
    the distances were computed in. ``meta``: set sizes, seed, subset sizes, skipped
    parts and why, utility runs. ``grid_png``: the sample grid. ``extractor``: the
    project CNN used (trained here when none was given), not serialised; save it with
    ``report.extractor.save(path)`` to compare later runs in the same space.
    """

    scores: dict[str, float] = field(default_factory=dict)
    extractor_info: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    grid_png: bytes | None = None
    extractor: ImageFeatureExtractor | None = field(default=None, repr=False, compare=False)

    def __getitem__(self, name: str) -> float:
        return self.scores[name]

    def to_dict(self) -> dict[str, Any]:
        grid = base64.b64encode(self.grid_png).decode("ascii") if self.grid_png else None
        return {
            "format": FORMAT,
            "version": VERSION,
            "scores": _json_safe(dict(sorted(self.scores.items()))),
            "extractor": _json_safe(self.extractor_info),
            "meta": _json_safe(self.meta),
            "grid_png": grid,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON text; written (atomically) to ``path`` when given."""
        if path is not None:
            check_writable(path, what="report")
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False)
        if path is not None:
            _write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageReport:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(
                f"not a synthgen image evaluation report (missing 'format': '{FORMAT}'); "
                "pass a file written by ImageReport.to_json"
            )
        if data.get("version") != VERSION:
            raise DataError(
                f"image evaluation report version {data.get('version')!r} is not supported "
                f"(this synthgen reads version {VERSION})"
            )
        try:
            scores = {
                str(k): (math.nan if v is None else float(v))
                for k, v in data.get("scores", {}).items()
            }
            grid = data.get("grid_png")
            png = base64.b64decode(grid, validate=True) if grid else None
        except (TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"image evaluation report is damaged: {exc}") from None
        return cls(scores, dict(data.get("extractor", {})), dict(data.get("meta", {})), png)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> ImageReport:
        """From JSON text or the path of a file written by ``to_json``."""
        text = str(text_or_path)
        if not text.lstrip().startswith("{"):
            try:
                text = Path(text_or_path).read_text(encoding="utf-8")
            except OSError as exc:
                raise DataError(f"cannot read image report {text!r}: {exc}") from None
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise DataError(f"image evaluation report is not valid JSON: {exc}") from None

    # ----------------------------------------------------------------- HTML
    def _scorecard(self) -> str:
        cards = []
        for name, label, higher, good, warn in CARDS:
            if name not in self.scores:
                continue
            value = self.scores[name]
            cards.append(
                f'<div class="card {_grade(value, higher, good, warn)}" data-score="{_esc(name)}">'
                f'<div class="n">{_esc(label)}</div><div class="v">{_esc(_fmt(value))}</div>'
                f'<div class="h">{_esc(name)}</div></div>'
            )
        return '<section id="scorecard">' + "".join(cards) + "</section>"

    @staticmethod
    def _table(rows: list[tuple[str, Any]], table_id: str, head: tuple[str, str]) -> str:
        body = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(_fmt(v))}</td></tr>" for k, v in rows)
        return (
            f'<table id="{_esc(table_id)}"><thead><tr><th>{_esc(head[0])}</th>'
            f"<th>{_esc(head[1])}</th></tr></thead><tbody>{body}</tbody></table>"
        )

    def render(self) -> str:
        """The whole page as a string."""
        from evaluation.html import CSS

        meta, info = self.meta, self.extractor_info
        sizes = meta.get("images", {})
        out = [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width, initial-scale=1'>",
            "<title>synthgen image evaluation report</title>",
            f"<style>{CSS}</style></head><body><main>",
            "<h1>Synthetic image evaluation</h1>",
            f'<div class="meta">real {_esc(sizes.get("real"))} images, synthetic '
            f"{_esc(sizes.get('synthetic'))}, holdout {_esc(sizes.get('holdout'))}; "
            f"shape {_esc(_fmt(meta.get('shape')))}; seed {_esc(meta.get('seed'))}; "
            f"created {_esc(meta.get('created'))}</div>",
            self._scorecard(),
            "<h2>All scores</h2>",
            self._table(sorted(self.scores.items()), "all-scores", ("score", "value")),
            '<h2 id="extractor">Feature extractor</h2>',
            f'<p class="note">FID, KID and precision/recall were computed by torch-fidelity '
            f"in the feature space of <b id='extractor-name'>{_esc(info.get('name'))}</b> "
            f"({_esc(info.get('kind'))}). Scores are comparable only between reports whose "
            "extractor digest is the same.</p>",
            self._table(
                [(k, v) for k, v in info.items() if not isinstance(v, dict)],
                "extractor-table",
                ("field", "value"),
            ),
        ]
        classifier = meta.get("classifier")
        if classifier:
            out.append(
                f'<p class="note">Classifier scores use the project CNN '
                f"{_esc(classifier.get('name'))}.</p>"
            )
        if meta.get("skipped"):
            out.append(
                "<p class='note'>Skipped: "
                + "; ".join(f"{_esc(k)} ({_esc(v)})" for k, v in meta["skipped"].items())
                + "</p>"
            )
        if self.grid_png:
            data = base64.b64encode(self.grid_png).decode("ascii")
            out.append(
                '<h2 id="samples">Samples</h2><p class="note">One row of synthetic images per '
                "class (up to 8 each); the last row shows real images for comparison.</p>"
                f'<img id="sample-grid" alt="sample grid" src="data:image/png;base64,{data}">'
            )
        out.append("</main></body></html>")
        return "\n".join(out)

    def to_html(self, path: str | Path | None = None) -> str:
        """A self-contained HTML page; written (atomically) to ``path`` when given."""
        if path is not None:
            check_writable(path, what="report")
        page = self.render()
        if path is not None:
            _write_text(path, page)
        return page

    def __repr__(self) -> str:
        head = ", ".join(
            f"{k}={v:.4g}"
            for k, v in self.scores.items()
            if k in ("fid.image", "fid.real_vs_real", "prc.precision", "prc.recall")
        )
        return f"ImageReport({head}; extractor {self.extractor_info.get('name')})"
