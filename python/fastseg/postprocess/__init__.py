"""Post-processing of label maps ``(z, y, x)``: connected-component clean-up (cc3d), hole
filling, label fusion (majority voting, STAPLE via SimpleITK), and per-class threshold and
clean-up selection on validation data (plans that ``apply_postprocessing`` applies)."""

from __future__ import annotations

from fastseg.postprocess._components import keep_largest_component, remove_small_components
from fastseg.postprocess._fusion import FUSION_METHODS, fuse, staple_probabilities
from fastseg.postprocess._holes import HOLE_MODES, fill_holes
from fastseg.postprocess._plan import (
    apply_postprocessing,
    labels_from_probabilities,
    load_plan,
    save_plan,
)
from fastseg.postprocess._select import HIGHER_IS_BETTER, select_postprocessing

__all__ = [
    "FUSION_METHODS",
    "HIGHER_IS_BETTER",
    "HOLE_MODES",
    "apply_postprocessing",
    "fill_holes",
    "fuse",
    "keep_largest_component",
    "labels_from_probabilities",
    "load_plan",
    "remove_small_components",
    "save_plan",
    "select_postprocessing",
    "staple_probabilities",
]
