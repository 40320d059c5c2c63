"""Training-data loading: patch sampling over a fastseg store and a prefetching loader.

``make_loader(kind="native" | "dali", ...)`` picks the native loader or the DALI one (extra
``fastseg[dali]``; it runs CPU-only where there is no GPU).

Patches and batches are (z, y, x) voxels; batches are ``image`` ``(N, C, z, y, x)`` float32 and
``label`` ``(N, z, y, x)`` int64 torch tensors.

>>> with PatchLoader("hippo.zarr", patch_size=(40, 56, 40), batch_size=9,
...                  augmentation="default") as loader:  # doctest: +SKIP
...     for batch in loader:
...         train_step(batch.image, batch.label)
"""

from __future__ import annotations

from fastseg.data._dali import DaliAugmentation, DaliPatchLoader, make_loader
from fastseg.data._loader import Batch, PatchLoader, WorkerError
from fastseg.data._profile import ProfileReport, profile
from fastseg.data._sampler import StorePatchSampler

__all__ = [
    "Batch",
    "DaliAugmentation",
    "DaliPatchLoader",
    "PatchLoader",
    "ProfileReport",
    "StorePatchSampler",
    "WorkerError",
    "make_loader",
    "profile",
]
