"""A self-contained HTML report of a metric table (``fastseg evaluate``'s CSV).

The page holds: a summary per label and metric; per metric, box plots per label and a histogram
per label; with a second table, the statistical comparison of the two per label and metric
(``fastseg.stats.compare_tables``: which test and why, p-value, effect size, confidence interval
of the difference); and the worst cases per label, with tri-planar overlays of the reference and
the prediction when their images are given. Figures are inline base64 PNGs, styles inline, so
the file can be mailed or archived alone. Written atomically.
"""

from __future__ import annotations

import base64
import csv
import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fastseg.errors import InputError

#: Known metric columns in display order, and whether higher is better.
KNOWN_METRICS = {
    "dice": True,
    "jaccard": True,
    "vs": True,
    "nsd": True,
    "hd": False,
    "hd95": False,
    "assd": False,
    "avd": False,
}

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } td.text { text-align: left; max-width: 32em; }
tr.significant td { background: #fff4e0; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { font-size: .85em; color: #555; }
.overlays { display: flex; gap: .5em; } .overlays img { max-width: 48%; }
.note { color: #666; font-size: .85em; }
"""


@dataclass
class _Table:
    path: Path
    name: str
    rows: list[dict[str, str]]
    has_label: bool

    def labels(self) -> list[str]:
        seen: list[str] = []
        for row in self.rows:
            lab = row["label"] if self.has_label else "all"
            if lab not in seen:
                seen.append(lab)
        return sorted(seen, key=_natural_key)

    def values(self, metric: str) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for row in self.rows:
            out.setdefault(row["label"] if self.has_label else "all", []).append(
                _number(row.get(metric, ""))
            )
        return out


def _natural_key(text: str) -> tuple[int, float | str]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def _read(path: str | os.PathLike[str], name: str) -> _Table:
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise InputError(f"{name}: cannot read {path} ({exc.strerror or exc})") from None
    if not rows:
        raise InputError(f"{name}: {path} has no rows")
    if "case" not in rows[0]:
        raise InputError(f"{name}: {path} has no 'case' column (columns: {sorted(rows[0])})")
    return _Table(path, path.stem, rows, "label" in rows[0])


def _fmt(value: float, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    return f"{value:.{digits}g}"


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{_esc(alt)}" src="data:image/png;base64,{data}">'


def _summary(tables: Sequence[_Table], metrics: Sequence[str], names: Mapping[str, str]) -> str:
    head = "".join(f"<th>{_esc(m)}</th>" for m in metrics)
    lines = [f'<table class="summary"><tr><th>label</th><th>table</th><th>n</th>{head}</tr>']
    labels = sorted({lab for t in tables for lab in t.labels()}, key=_natural_key)
    for lab in labels:
        for t in tables:
            values = {m: np.asarray(t.values(m).get(lab, []), dtype=np.float64) for m in metrics}
            n = max((v.size for v in values.values()), default=0)
            cells = []
            for m in metrics:
                v = values[m]
                finite = v[np.isfinite(v)]
                if finite.size == 0:
                    cells.append("<td>–</td>")
                    continue
                text = f"{_fmt(float(finite.mean()))} ± {_fmt(float(finite.std(ddof=1)) if finite.size > 1 else 0.0, 2)}"
                text += f"<br><small>median {_fmt(float(np.median(finite)))}"
                if finite.size < v.size:
                    text += f", {v.size - finite.size} non-finite"
                cells.append(f"<td>{text}</small></td>")
            lines.append(
                f"<tr><td class='text'>{_esc(names.get(lab, lab))}</td>"
                f"<td class='text'>{_esc(t.name)}</td><td>{n}</td>{''.join(cells)}</tr>"
            )
    lines.append("</table>")
    return "\n".join(lines)


def _statistics(
    a: _Table,
    b: _Table,
    metrics: Sequence[str],
    names: Mapping[str, str],
    alpha: float,
    alternative: str,
) -> str:
    from fastseg.stats import compare_tables

    parts = [
        f"<p>{_esc(a.name)} vs {_esc(b.name)}: differences are {_esc(a.name)} − {_esc(b.name)}; "
        f"α = {alpha:g}, {_esc(alternative)}. Cases in both tables are paired. Non-finite values "
        "(distances of empty masks) are left out.</p>"
    ]
    head = (
        "<tr><th>label</th><th>test</th><th>why</th><th>n</th><th>statistic</th><th>p</th>"
        "<th>effect size</th><th>difference [CI]</th><th>significant</th></tr>"
    )
    for metric in metrics:
        parts.append(f'<h3>{_esc(metric)}</h3><table class="stats" data-metric="{_esc(metric)}">')
        parts.append(head)
        try:
            results = compare_tables(
                a.path,
                b.path,
                metric=metric,
                by="label" if a.has_label and b.has_label else None,
                alpha=alpha,
                alternative=alternative,
                drop_nonfinite=True,
            )
        except (InputError, ValueError) as exc:
            parts.append(f"<tr><td class='text' colspan='9'>not compared: {_esc(exc)}</td></tr>")
            parts.append("</table>")
            continue
        for lab, r in results.items():
            n = f"{r.n_a} / {r.n_b}" + (" pairs" if r.paired else "")
            ci = f"{_fmt(r.estimate)} [{_fmt(r.ci[0])}, {_fmt(r.ci[1])}]"
            row_class = " class='significant'" if r.significant else ""
            parts.append(
                f"<tr{row_class}><td class='text'>{_esc(names.get(lab, lab))}</td>"
                f"<td class='text'>{_esc(r.test)}</td><td class='text'>{_esc(r.reason)}</td>"
                f"<td>{_esc(n)}</td><td>{_fmt(r.statistic)}</td><td>{_fmt(r.pvalue)}</td>"
                f"<td>{_esc(r.effect_size_name)} = {_fmt(r.effect_size)}</td>"
                f"<td>{_esc(r.estimate_name)} {ci}</td><td>{'yes' if r.significant else 'no'}</td></tr>"
            )
        parts.append("</table>")
    return "\n".join(parts)


def _load_volume(item: Any, what: str) -> Any:
    from fastseg.io import Volume, read

    if isinstance(item, (str, os.PathLike)):
        return read(item)
    if isinstance(item, Volume):
        return item
    array = np.asarray(item)
    if array.ndim not in (3, 4):
        raise InputError(
            f"overlays: {what}: expected a (z, y, x) volume or a path, got {array.shape}"
        )
    return Volume(array)


def _overlay_images(
    case: str,
    label: str,
    paths: Sequence[Any],
    label_names: Mapping[int, str],
    cache: dict[str, Any],
) -> str:
    from fastseg.report._plots import figure_png
    from fastseg.report._triplanar import label_center, triplanar_figure

    if case not in cache:
        cache[case] = [
            _load_volume(p, w) for p, w in zip(paths, ("image", "label", "prediction"), strict=True)
        ]
    image, ref, pred = cache[case]
    if image.array.ndim == 4:
        image = image.with_array(image.array[0]) if image.array.shape[0] else image
    try:
        value = int(float(label))
    except ValueError:
        value = None
    center = None
    for mask_source in (ref, pred):
        if value is not None and np.any(mask_source.array == value):
            center = label_center(mask_source.array == value, image.spacing)
            break
    imgs = []
    for which, vol in (("reference", ref), ("prediction", pred)):
        fig = triplanar_figure(
            image, vol, center=center, title=f"{case}: {which}", label_names=label_names, dpi=70
        )
        imgs.append(_img(figure_png(fig), f"{case} {which}"))
    return f'<div class="overlays" data-case="{_esc(case)}">{"".join(imgs)}</div>'


def _worst(
    table: _Table,
    metrics: Sequence[str],
    metric: str,
    count: int,
    names: Mapping[str, str],
    overlays: Mapping[str, Sequence[Any]] | None,
    int_names: Mapping[int, str],
) -> str:
    higher = KNOWN_METRICS.get(metric, True)
    parts = [
        f"<p>The {count} worst cases of {_esc(table.name)} per label by {_esc(metric)} "
        f"({'lowest' if higher else 'highest'} first).</p>"
    ]
    cache: dict[str, Any] = {}
    for lab in table.labels():
        rows = [r for r in table.rows if (r["label"] if table.has_label else "all") == lab]

        def badness(row: dict[str, str]) -> tuple[int, float]:
            v = _number(row.get(metric))
            if math.isnan(v):
                return (1, 0.0)
            return (0, v if higher else -v)

        rows = sorted(rows, key=badness)[:count]
        head = "".join(f"<th>{_esc(m)}</th>" for m in metrics)
        overlay_head = "<th>reference / prediction</th>" if overlays else ""
        parts.append(f"<h3>{_esc(names.get(lab, lab))}</h3>")
        parts.append(
            f'<table class="worst" data-label="{_esc(lab)}"><tr><th>rank</th><th>case</th>'
            f"{head}{overlay_head}</tr>"
        )
        for rank, row in enumerate(rows, start=1):
            cells = "".join(f"<td>{_fmt(_number(row.get(m)))}</td>" for m in metrics)
            extra = ""
            if overlays:
                case = row["case"]
                extra = (
                    f"<td>{_overlay_images(case, lab, overlays[case], int_names, cache)}</td>"
                    if case in overlays
                    else "<td class='text'>no images</td>"
                )
            parts.append(
                f"<tr><td>{rank}</td><td class='text'>{_esc(row['case'])}</td>{cells}{extra}</tr>"
            )
        parts.append("</table>")
    return "\n".join(parts)


def write_html_report(
    metrics_csv: str | os.PathLike[str],
    out_html: str | os.PathLike[str],
    *,
    compare_csv: str | os.PathLike[str] | None = None,
    overlays: Mapping[str, Sequence[Any]] | None = None,
    metrics: Sequence[str] | None = None,
    stats_metrics: Sequence[str] | None = None,
    worst: int = 5,
    worst_metric: str | None = None,
    label_names: Mapping[Any, str] | None = None,
    title: str | None = None,
    alpha: float = 0.05,
    alternative: str = "two-sided",
) -> Path:
    """Write a self-contained HTML report of ``metrics_csv`` to ``out_html``; returns its path.

    Parameters
    ----------
    metrics_csv : a metric table with a ``case`` column, optionally ``label``, and metric columns
        (``fastseg evaluate``'s CSV).
    compare_csv : a second table (another method, or the same one with/without post-processing
        or TTA): plotted beside the first and compared per label with ``fastseg.stats``.
    overlays : ``case -> (image, reference label, prediction)``, each a path (read with
        ``fastseg.io.read``), a ``Volume`` or an array ``(z, y, x)``: the worst cases get
        tri-planar views of the reference and of the prediction.
    metrics : metric columns to show (default: the known ones present: dice, jaccard, vs, nsd,
        hd, hd95, assd, avd); ``stats_metrics`` those to test (default: the same).
    worst, worst_metric : how many worst cases per label to list, ranked by which metric
        (default dice, else the first metric).
    label_names : display names of labels (``{1: "liver"}``).
    alpha, alternative : significance level and ``"two-sided"``, ``"greater"`` or ``"less"``.
    """
    from fastseg._atomic import write_text_atomic
    from fastseg.report._plots import figure_png, metric_figure

    a = _read(metrics_csv, "metrics_csv")
    b = _read(compare_csv, "compare_csv") if compare_csv is not None else None
    tables = [a] if b is None else [a, b]
    if b is not None and a.name == b.name:
        b.name = f"{b.name} ({b.path.parent.name or 'second'})"
    columns = set(a.rows[0]) & (set(b.rows[0]) if b is not None else set(a.rows[0]))
    if metrics is None:
        metrics = [
            m
            for m in KNOWN_METRICS
            if m in columns and any(np.isfinite(_number(r.get(m))) for r in a.rows)
        ]
    else:
        metrics = list(metrics)
        missing = [m for m in metrics if m not in columns]
        if missing:
            raise InputError(
                f"metrics {missing} are not columns of {a.path}" + (f" and {b.path}" if b else "")
            )
    if not metrics:
        raise InputError(f"{a.path}: no metric columns found (columns: {sorted(columns)})")
    if worst_metric is None:
        worst_metric = "dice" if "dice" in metrics else metrics[0]
    elif worst_metric not in metrics:
        raise InputError(f"worst_metric: {worst_metric!r} is not one of the metrics {metrics}")
    if isinstance(worst, bool) or not isinstance(worst, int) or worst < 0:
        raise InputError(f"worst: expected a non-negative integer, got {worst!r}")
    for case, items in (overlays or {}).items():
        if isinstance(items, (str, os.PathLike)) or len(items) != 3:
            raise InputError(
                f"overlays[{case!r}]: expected (image, reference label, prediction), got {items!r}"
            )
    names = {str(k): str(v) for k, v in (label_names or {}).items()}
    int_names: dict[int, str] = {}
    for k, v in names.items():
        try:
            int_names[int(float(k))] = v
        except ValueError:
            pass

    title = title or f"Segmentation report: {a.name}" + (f" vs {b.name}" if b else "")
    body = [f"<h1>{_esc(title)}</h1>"]
    cases = {t.name: len({r["case"] for r in t.rows}) for t in tables}
    body.append(
        "<p>"
        + "; ".join(
            f"{_esc(t.name)}: {cases[t.name]} cases, labels {_esc(', '.join(t.labels()))} "
            f"(<code>{_esc(t.path.name)}</code>)"
            for t in tables
        )
        + "</p>"
    )
    body.append("<h2>Summary</h2>")
    body.append("<p class='note'>mean ± standard deviation, median, over the finite values.</p>")
    body.append(_summary(tables, metrics, names))
    body.append("<h2>Distributions</h2>")
    for metric in metrics:
        series = {t.name: t.values(metric) for t in tables}
        png = figure_png(metric_figure(metric, series, names))
        body.append(
            f'<figure class="metric-plot" data-metric="{_esc(metric)}">{_img(png, metric)}'
            f"<figcaption>{_esc(metric)}: box plots per label (top), histogram per label "
            "(below).</figcaption></figure>"
        )
    if b is not None:
        body.append("<h2>Statistics</h2>")
        body.append(_statistics(a, b, list(stats_metrics or metrics), names, alpha, alternative))
    if worst:
        body.append("<h2>Worst cases</h2>")
        body.append(_worst(a, metrics, worst_metric, worst, names, overlays, int_names))
    page = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    return write_text_atomic(Path(out_html), page)
