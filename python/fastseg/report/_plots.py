"""Distribution plots of a metric per label: box plots and histograms (matplotlib, no pyplot)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Colours of the compared tables (first, second).
SERIES_COLORS = ("#1f77b4", "#ff7f0e")


def metric_figure(
    metric: str,
    series: Mapping[str, Mapping[str, Sequence[float]]],
    label_names: Mapping[str, str] | None = None,
    histogram_columns: int = 4,
) -> Figure:
    """Box plots of ``metric`` per label (top) and one histogram per label (below).

    ``series`` maps a table name to ``{label: values}``; with two tables the boxes stand side
    by side and the histograms overlap. Non-finite values (an empty mask's distances) are left
    out and counted in the panel titles.
    """
    from matplotlib.figure import Figure

    names = list(series)
    labels: list[str] = []
    for table in series.values():
        labels += [lab for lab in table if lab not in labels]
    shown = {lab: (label_names or {}).get(lab, f"label {lab}") for lab in labels}
    cols = max(1, min(histogram_columns, len(labels)))
    rows = math.ceil(len(labels) / cols) if labels else 0
    fig = Figure(figsize=(max(6.0, 2.6 * cols), 3.0 + 2.2 * rows), dpi=90)
    grid = fig.add_gridspec(1 + rows, cols, height_ratios=[1.4] + [1.0] * rows, hspace=0.7)

    def finite(values: Sequence[float]) -> np.ndarray:
        array = np.asarray(values, dtype=np.float64)
        return array[np.isfinite(array)]

    box = fig.add_subplot(grid[0, :])
    width = 0.8 / max(len(names), 1)
    for s, name in enumerate(names):
        data = [finite(series[name].get(lab, [])) for lab in labels]
        positions = [i + (s - (len(names) - 1) / 2) * width for i in range(len(labels))]
        keep = [k for k, d in enumerate(data) if d.size]
        if keep:
            parts = box.boxplot(
                [data[k] for k in keep],
                positions=[positions[k] for k in keep],
                widths=width * 0.85,
                patch_artist=True,
                manage_ticks=False,
            )
            for patch in parts["boxes"]:
                patch.set_facecolor(SERIES_COLORS[s % len(SERIES_COLORS)])
                patch.set_alpha(0.6)
        box.plot([], [], color=SERIES_COLORS[s % len(SERIES_COLORS)], lw=6, alpha=0.6, label=name)
    box.set_xticks(range(len(labels)))
    box.set_xticklabels([shown[lab] for lab in labels], rotation=30 if len(labels) > 6 else 0)
    box.set_xlim(-0.6, len(labels) - 0.4)
    box.set_ylabel(metric)
    box.set_title(f"{metric} per label")
    box.grid(axis="y", alpha=0.3)
    if len(names) > 1:
        box.legend(loc="best", fontsize=8)

    for i, lab in enumerate(labels):
        ax = fig.add_subplot(grid[1 + i // cols, i % cols])
        values = [finite(series[name].get(lab, [])) for name in names]
        dropped = sum(len(series[name].get(lab, [])) for name in names) - sum(
            v.size for v in values
        )
        pooled = np.concatenate(values) if values else np.zeros(0)
        if pooled.size:
            low, high = float(pooled.min()), float(pooled.max())
            bins = np.linspace(low, high if high > low else low + 1.0, 16)
            for s, v in enumerate(values):
                if v.size:
                    ax.hist(
                        v, bins=list(bins), alpha=0.55, color=SERIES_COLORS[s % len(SERIES_COLORS)]
                    )
        title = shown[lab] + (f" ({dropped} non-finite)" if dropped else "")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(metric, fontsize=8)
        ax.tick_params(labelsize=7)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()
