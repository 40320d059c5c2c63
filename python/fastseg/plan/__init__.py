"""``fastseg plan``: propose a training configuration (patch size, network topology, batch size,
time budget) from a store's fingerprint, as nnU-Net's experiment planner does."""

from __future__ import annotations

from fastseg.plan._planner import format_plan, plan_training, write_plan
from fastseg.plan._topology import Topology, fit_topology, topology

__all__ = ["Topology", "fit_topology", "format_plan", "plan_training", "topology", "write_plan"]
