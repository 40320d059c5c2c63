"""Visual QC: tri-planar views of a scan with its labels overlaid, as PNG; metric plots and
self-contained HTML reports of metric tables.

Arrays are ``(z, y, x)``, spacings ``(z, y, x)`` in mm; windows ``(width, level)`` in HU.
"""

from __future__ import annotations

from fastseg.report._html import write_html_report
from fastseg.report._overlay import PALETTE, overlay_rgb
from fastseg.report._plots import metric_figure
from fastseg.report._triplanar import label_center, save_triplanar, triplanar_figure
from fastseg.report._window import WINDOW_PRESETS

__all__ = [
    "PALETTE",
    "WINDOW_PRESETS",
    "label_center",
    "metric_figure",
    "overlay_rgb",
    "save_triplanar",
    "triplanar_figure",
    "write_html_report",
]
