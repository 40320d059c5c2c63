"""Post-processing of label maps ``(z, y, x)``: connected-component clean-up with cc3d."""

from __future__ import annotations

from fastseg.postprocess._components import keep_largest_component, remove_small_components

__all__ = ["keep_largest_component", "remove_small_components"]
