"""``fastseg demo``: synthetic chest CT phantoms through the whole workflow.

:func:`make_phantom` draws one phantom (HU image + labels, see :data:`LABELS`),
:func:`write_dataset` writes a Medical Segmentation Decathlon dataset of them, and
:func:`run_demo` runs phantoms → preprocess → train → infer → clean-up → metrics → stats →
report. Arrays are ``(z, y, x)``, spacings in mm.
"""

from __future__ import annotations

from fastseg.demo._dataset import write_dataset
from fastseg.demo._phantom import DEFAULT_SHAPE, DEFAULT_SPACING, LABELS, make_phantom
from fastseg.demo._run import run_demo

__all__ = [
    "DEFAULT_SHAPE",
    "DEFAULT_SPACING",
    "LABELS",
    "make_phantom",
    "run_demo",
    "write_dataset",
]
