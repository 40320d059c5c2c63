"""The fastseg dataset store: one chunked, compressed Zarr v3 hierarchy holding a preprocessed
dataset, readable patch by patch from local disk or any fsspec URL.

- :func:`convert` turns an MSD/nnU-Net folder, a folder of images or DICOM series into a store
  (reorient to RAS, crop to the non-zero region, resample to the target spacing, record the
  normalisation), in parallel (process pool or Dask), crash-safe and resumable.
- :meth:`Store.open` reads one: ``store.cases``, ``store[case].read_patch(start=..., size=...)``
  returning ``(image (C, z, y, x), label (z, y, x))`` on the stored grid, and
  ``store[case].volume("image" | "label")`` back on the source scan's grid.
"""

from __future__ import annotations

from fastseg.store._convert import convert
from fastseg.store._reader import Case, Store
from fastseg.store._report import ConversionReport
from fastseg.store._schema import SCHEMA_VERSION, StorageOptions

__all__ = ["SCHEMA_VERSION", "Case", "ConversionReport", "StorageOptions", "Store", "convert"]
