"""Training-data loading: patch sampling over a fastseg store and a prefetching loader.

Patches and batches are (z, y, x) voxels; batches are ``image`` ``(N, C, z, y, x)`` float32 and
``label`` ``(N, z, y, x)`` int64 torch tensors.

>>> with PatchLoader("hippo.zarr", patch_size=(40, 56, 40), batch_size=9,
...                  augmentation="default") as loader:  # doctest: +SKIP
...     for batch in loader:
...         train_step(batch.image, batch.label)
"""

from __future__ import annotations

from fastseg.data._loader import Batch, PatchLoader, WorkerError
from fastseg.data._profile import ProfileReport, profile
from fastseg.data._sampler import StorePatchSampler

__all__ = ["Batch", "PatchLoader", "ProfileReport", "StorePatchSampler", "WorkerError", "profile"]
