"""Reading a fastseg store: ``Store.open(url)``, ``store.cases``, ``store[case]``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from fastseg.errors import ImageReadError, InputError
from fastseg.store import _schema as sc
from fastseg.store._backend import Backend, backend_for
from fastseg.store._chunks import (
    ArrayInfo,
    Region,
    Transform,
    apply_transform,
    covers,
    read_regions,
)
from fastseg.store._preprocess import restore
from fastseg.store._preprocess import transforms as _transforms


def _json(backend: Backend, key: str) -> dict[str, Any] | None:
    blob = backend.get(key)
    if blob is None:
        return None
    try:
        doc = json.loads(blob)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _case_attrs(doc: dict[str, Any] | None) -> dict[str, Any] | None:
    """The case's fastseg attributes when the case is complete, else None."""
    if doc is None:
        return None
    attrs = doc.get("attributes", {}).get(sc.ATTRS_KEY)
    if not isinstance(attrs, dict) or attrs.get("complete") is not True:
        return None
    return attrs


def _int3(value: Sequence[int] | None, name: str) -> tuple[int, int, int]:
    if value is None or len(value) != 3:
        raise InputError(f"{name}: expected 3 integers (z, y, x), got {value!r}")
    try:
        out = tuple(int(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: expected 3 integers (z, y, x), got {value!r}") from exc
    if any(o != v for o, v in zip(out, value, strict=True)):
        raise InputError(f"{name}: expected integers, got {value!r}")
    return (out[0], out[1], out[2])


class Case:
    """One converted case. Obtain it as ``store[case_id]``.

    The stored grid is the preprocessed one: reoriented to RAS, cropped to the non-zero region,
    resampled to the store's target spacing. ``image`` holds the source intensities on that grid
    (source dtype; interpolated values rounded for integer images); reads normalise them with
    the recorded parameters (CT: clip to the dataset's foreground 0.5-99.5 percentiles, then
    z-score with its foreground mean/std; MR: z-score with the image's own mean/std).
    """

    def __init__(self, store: Store, case_id: str, attrs: dict[str, Any]) -> None:
        self.store = store
        self.case_id = case_id
        self.attrs = attrs
        self._prefix = f"{sc.CASES}/{case_id}"
        self._image_info: ArrayInfo | None = None
        self._label_info: ArrayInfo | None = None
        self._zarr_group: Any = None
        self._codebook: np.ndarray | None = None

    def __repr__(self) -> str:
        return f"Case({self.case_id!r}, shape={self.shape}, channels={self.channels})"

    @property
    def shape(self) -> tuple[int, int, int]:
        """Spatial shape ``(z, y, x)`` of the stored grid."""
        s = self.attrs["stored"]["shape"]
        return (int(s[0]), int(s[1]), int(s[2]))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size (z, y, x) in mm of the stored grid."""
        s = self.attrs["stored"]["spacing"]
        return (float(s[0]), float(s[1]), float(s[2]))

    @property
    def channels(self) -> int:
        return int(self.attrs["channels"])

    @property
    def has_label(self) -> bool:
        return bool(self.attrs["has_label"])

    @property
    def pad_values(self) -> list[float]:
        """Per channel, the source-unit value padding takes: the case's minimum."""
        return [float(v) for v in self.attrs["pad_value"]]

    @property
    def normalized_pad_values(self) -> list[float]:
        """Per channel, the padding value of normalised reads (the normalised minimum): what
        training patches and whole-case inference pad with."""
        return [float(self.normalize(v, c)) for c, v in enumerate(self.pad_values)]

    def _info(self, name: str) -> ArrayInfo:
        cached = self._image_info if name == sc.IMAGE else self._label_info
        if cached is not None:
            return cached
        meta = _json(self.store.backend, f"{self._prefix}/{name}/zarr.json")
        if meta is None:
            raise ImageReadError(f"{self.store.url}: case {self.case_id!r} has no {name} array")
        info = ArrayInfo(f"{self._prefix}/{name}", meta)
        if name == sc.IMAGE:
            self._image_info = info
        else:
            self._label_info = info
        return info

    def _zarr(self, name: str) -> Any:
        import zarr

        if self._zarr_group is None:
            self._zarr_group = zarr.open_group(
                self.store.backend.zarr_store(read_only=True), path=self._prefix, mode="r"
            )
        return self._zarr_group[name]

    def _read(
        self, requests: Sequence[tuple[str, Sequence[int], np.ndarray, Sequence[Any] | None]]
    ) -> None:
        """Fill each ``(array name, start, out, transforms)`` request (direct chunk reads, all
        requests in one batch; zarr-python for arrays written with other codecs)."""
        direct = []
        for name, start, out, transforms in requests:
            info = self._info(name)
            if info.direct:
                direct.append(Region(info, tuple(start), out, transforms))
                continue
            lo = [max(s, 0) for s in start]
            hi = [min(s + n, d) for s, n, d in zip(start, out.shape, info.shape, strict=True)]
            if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
                continue
            src = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start, strict=True))
            values = self._zarr(name)[src]
            if transforms is None:
                out[dst] = values
            else:
                target = out[dst]
                for c in range(values.shape[0]):
                    t = transforms[lo[0] + c]
                    if isinstance(t, np.ndarray):
                        target[c] = t[values[c]]
                    else:
                        apply_transform(values[c], t, target[c])
        read_regions(self.store.backend, direct)

    def transforms(self) -> list[Transform]:
        """Per channel ``(lo, hi, offset, scale)``: normalised = ``(clip(v, lo, hi) - offset) *
        scale`` (CT: the dataset's clip window and foreground mean/std; MR: the image's own
        mean/std, no clipping)."""
        return _transforms(self.attrs["normalization"])

    @property
    def coded(self) -> bool:
        """Whether ``image`` holds codes into a table of distinct float values (lossless)."""
        return self.attrs["stored"].get("coding", "none") == "codebook"

    def codebook(self) -> np.ndarray | None:
        """``(C, K)`` float32 distinct values the codes of a coded image index, else None."""
        if not self.coded:
            return None
        if self._codebook is None:
            meta = _json(self.store.backend, f"{self._prefix}/{sc.CODEBOOK}/zarr.json")
            if meta is None:
                raise ImageReadError(f"{self.store.url}: case {self.case_id!r} has no codebook")
            info = ArrayInfo(f"{self._prefix}/{sc.CODEBOOK}", meta)
            table = np.empty(info.shape, dtype=np.float32)
            if info.direct:
                read_regions(self.store.backend, [Region(info, (0, 0), table)])
            else:
                table[...] = self._zarr(sc.CODEBOOK)[...]
            self._codebook = table
        return self._codebook

    def _image_transforms(self, normalized: bool) -> list[Any] | None:
        table = self.codebook()
        if table is None:
            return self.transforms() if normalized else None
        if not normalized:
            return list(table)
        return [self.normalize(table[c], c) for c in range(table.shape[0])]

    def normalize(self, raw: Any, channel: int) -> np.ndarray:
        """Normalise source-unit values of ``channel`` as reads do; float32."""
        values = np.asarray(raw)
        out = np.empty(values.shape, dtype=np.float32)
        apply_transform(values, self.transforms()[channel], out)
        return out

    def read_patch(
        self,
        start: Sequence[int] | None = None,
        size: Sequence[int] | None = None,
        *,
        center: Sequence[int] | None = None,
        normalized: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """A patch of the stored grid: ``image`` ``(C, z, y, x)`` and ``label`` ``(z, y, x)``.

        Give ``size`` ``(z, y, x)`` voxels and either ``start`` (index of the first voxel) or
        ``center`` (the patch spans ``center - size // 2`` .. ``+ size``). Parts outside the
        volume are padded: image with each channel's minimum (``pad_values``; normalised like
        every voxel), label with 0. The image is float32 normalised (``normalized=False``: source
        units, in the stored dtype — float32 for a coded float image); the label keeps its
        stored dtype, or is None for an unlabelled case. Only the chunks the patch touches are
        read, decoded in a thread pool straight into the output.
        """
        sz = _int3(size, "size")
        if min(sz) < 1:
            raise InputError(f"size: expected positive sizes, got {sz}")
        if (start is None) == (center is None):
            raise InputError("read_patch: give exactly one of start= or center=")
        if start is None:
            c = _int3(center, "center")
            st = (c[0] - sz[0] // 2, c[1] - sz[1] // 2, c[2] - sz[2] // 2)
        else:
            st = _int3(start, "start")
        info = self._info(sc.IMAGE)
        transforms = self._image_transforms(normalized)
        dtype = np.float32 if normalized or self.coded else info.dtype
        image = np.empty((self.channels, *sz), dtype=dtype)
        inside = covers(info, (0, *st), image.shape)
        if not inside:
            for ch, v in enumerate(self.pad_values):
                image[ch] = self.normalize(v, ch) if normalized else v
        requests: list[tuple[str, Sequence[int], np.ndarray, Sequence[Any] | None]] = [
            (sc.IMAGE, (0, *st), image, transforms)
        ]
        label = None
        if self.has_label:
            label = np.empty(sz, dtype=self._info(sc.LABEL).dtype)
            if not inside:
                label.fill(0)
            requests.append((sc.LABEL, st, label, None))
        self._read(requests)
        return image, label

    def image(self, normalized: bool = True) -> np.ndarray:
        """The whole stored image ``(C, z, y, x)`` (float32 normalised, or source units)."""
        return self.read_patch((0, 0, 0), self.shape, normalized=normalized)[0]

    def label(self) -> np.ndarray | None:
        """The whole stored label map ``(z, y, x)``, None for an unlabelled case."""
        if not self.has_label:
            return None
        out = np.empty(self.shape, dtype=self._info(sc.LABEL).dtype)
        self._read([(sc.LABEL, (0, 0, 0), out, None)])
        return out

    def foreground(self) -> dict[int, np.ndarray]:
        """Per class, sampled voxel indices ``(n, 3)`` (z, y, x) on the stored grid where the
        label is that class (up to 10,000 or 1% of the class, as nnU-Net samples)."""
        counts = self.attrs["foreground"]["sampled"]
        if not counts:
            return {}
        total = sum(int(n) for n in counts.values())
        meta = _json(self.store.backend, f"{self._prefix}/{sc.FOREGROUND}/zarr.json")
        if meta is None:
            raise ImageReadError(f"{self.store.url}: case {self.case_id!r} has no foreground array")
        info = ArrayInfo(f"{self._prefix}/{sc.FOREGROUND}", meta)
        columns = np.empty((4, total), dtype=info.dtype)
        if info.direct:
            read_regions(self.store.backend, [Region(info, (0, 0), columns)])
        else:
            columns[...] = self._zarr(sc.FOREGROUND)[...]
        rows = columns.T.astype(np.int64)
        return {
            int(c): np.ascontiguousarray(rows[rows[:, 0] == int(c), 1:])
            for c in sorted(counts, key=int)
        }

    def volume(
        self, kind: str = "image", channel: int = 0, *, order: int = 1, normalized: bool = False
    ) -> Any:
        """The case back on the original grid and geometry of its source scan, as a Volume.

        Undoes resampling (images: spline ``order``, default linear; labels: per-class linear
        one-hot and argmax, nearest across a coarse axis as at conversion), the crop (the
        outside is 0, as it was) and the reorientation. Images come back in source units and
        dtype (``normalized=True``: normalised float32), labels in their source dtype.
        """
        if kind not in ("image", "label"):
            raise InputError(f"kind: expected 'image' or 'label', got {kind!r}")
        a = self.attrs
        if kind == "label":
            data = self.label()
            if data is None:
                raise InputError(f"case {self.case_id!r} has no label")
            dtype = np.dtype(a["source"]["label_dtype"])
            fill: float = 0
        else:
            if not 0 <= channel < self.channels:
                raise InputError(f"channel: expected 0..{self.channels - 1}, got {channel}")
            data = self.image(normalized=normalized)[channel]
            if normalized:
                dtype = np.dtype(np.float32)
                fill = float(self.normalize(0.0, channel))
            else:
                dtype = np.dtype(a["source"]["image_dtype"])
                fill = 0
        try:
            return restore(data, a, kind=kind, dtype=dtype, fill=fill, order=order)
        except ImageReadError as exc:
            raise ImageReadError(f"case {self.case_id!r}: {exc}") from None


class Store:
    """A fastseg dataset store (a Zarr v3 group) on local disk or any fsspec URL.

    ``Store.open(url)``; ``store.cases`` lists the complete cases (sorted ids); ``store[id]``
    gives a :class:`Case`. Dataset attributes: ``modality``, ``label_names``,
    ``preprocessing``, ``fingerprint``.
    """

    def __init__(self, backend: Backend, attrs: dict[str, Any]) -> None:
        self.backend = backend
        self.url = backend.url
        self.attrs = attrs
        self._cases: dict[str, dict[str, Any]] = {}
        self.refresh()

    @classmethod
    def open(cls, url: str | os.PathLike[str]) -> Store:
        """Open the store at ``url`` (a folder or an fsspec URL such as ``s3://b/x.zarr``)."""
        backend = backend_for(url)
        doc = _json(backend, "zarr.json")
        if doc is None:
            raise ImageReadError(f"{backend.url}: no Zarr group here (zarr.json missing)")
        attrs = doc.get("attributes", {}).get(sc.ATTRS_KEY)
        if not isinstance(attrs, dict):
            raise ImageReadError(f"{backend.url}: a Zarr group, but not a fastseg store")
        sc.check_schema(attrs, backend.url)
        return cls(backend, attrs)

    def refresh(self) -> None:
        """Re-list the complete cases (e.g. while a conversion is still running)."""
        names = [n for n in self.backend.list_dir(sc.CASES) if n != "zarr.json"]
        docs = self.backend.get_many([f"{sc.CASES}/{n}/zarr.json" for n in names])
        cases = {}
        for name, blob in zip(names, docs, strict=True):
            try:
                doc = json.loads(blob) if blob is not None else None
            except ValueError:
                doc = None
            attrs = _case_attrs(doc if isinstance(doc, dict) else None)
            if attrs is not None:
                cases[name] = attrs
        self._cases = dict(sorted(cases.items()))

    @property
    def cases(self) -> list[str]:
        return list(self._cases)

    def __len__(self) -> int:
        return len(self._cases)

    def __iter__(self) -> Iterator[str]:
        return iter(self._cases)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._cases

    def __getitem__(self, case_id: str) -> Case:
        attrs = self._cases.get(case_id)
        if attrs is None:
            raise KeyError(f"{self.url}: no complete case {case_id!r}")
        return Case(self, case_id, attrs)

    def __repr__(self) -> str:
        return f"Store({self.url!r}, cases={len(self)}, modality={self.modality!r})"

    @property
    def modality(self) -> str:
        return str(self.attrs["modality"])

    @property
    def channel_names(self) -> list[str]:
        return list(self.attrs["channel_names"])

    @property
    def label_names(self) -> dict[int, str]:
        return {int(k): str(v) for k, v in self.attrs["label_names"].items()}

    @property
    def preprocessing(self) -> dict[str, Any]:
        return dict(self.attrs["preprocessing"])

    @property
    def fingerprint(self) -> dict[str, Any]:
        return dict(self.attrs["fingerprint"])

    @property
    def training_plan(self) -> dict[str, Any] | None:
        """The training configuration ``fastseg plan`` proposed (root attribute
        ``training_plan``: config sections plus ``rationale``/``alternatives``), or None."""
        plan = self.attrs.get("training_plan")
        return dict(plan) if isinstance(plan, dict) else None

    def write_training_plan(self, plan: dict[str, Any] | None) -> None:
        """Store ``plan`` as the root attribute ``training_plan`` (None removes it): the root
        ``zarr.json`` is re-read and replaced in one atomic object write."""
        from fastseg.store._pipeline import _jsonable

        doc = _json(self.backend, "zarr.json")
        attrs = None if doc is None else doc.get("attributes", {}).get(sc.ATTRS_KEY)
        if doc is None or not isinstance(attrs, dict):
            raise ImageReadError(f"{self.url}: root zarr.json missing or not a fastseg store")
        if plan is None:
            attrs.pop("training_plan", None)
        else:
            attrs["training_plan"] = _jsonable(plan)
        doc["attributes"][sc.ATTRS_KEY] = attrs
        self.backend.put("zarr.json", json.dumps(doc, indent=1, allow_nan=False).encode())
        self.attrs = attrs

    @property
    def report(self) -> dict[str, Any] | None:
        """The last conversion report, if any."""
        doc = _json(self.backend, f"{sc.REPORT}/zarr.json")
        if doc is None:
            return None
        rep = doc.get("attributes", {}).get(sc.REPORT_KEY)
        return rep if isinstance(rep, dict) else None
