"""fastseg.augment on CUDA tensors against the CPU path on the same drawn parameters: equal up to
float rounding (labels: a few voxels may round the other way). Runs in benchmarks/gpu_check.sh."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fastseg.augment import Pipeline, default_config

pytestmark = pytest.mark.cuda

INTENSITY = ("noise", "blur", "brightness", "contrast", "lowres", "gamma", "bias_field")
SPACING = (2.0, 0.9, 1.1)


def batch(
    seed: int = 0, n: int = 3, c: int = 2, shape: tuple[int, int, int] = (17, 20, 23)
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = (rng.normal(size=(n, c, *shape)) * 40 + 100).astype(np.float32)
    label = rng.integers(0, 4, (n, *shape)).astype(np.int64)
    return image, label


def spatial_steps() -> list[dict[str, Any]]:
    return [
        {"name": "affine", "p_rotation": 1.0, "p_scale": 1.0, "translation": (-3.0, 3.0)},
        {"name": "elastic", "p": 0.8, "grid": (4, 5, 6)},
        {"name": "flip"},
    ]


def both(
    pipeline: Pipeline, image: np.ndarray, label: np.ndarray | None, seed: int
) -> tuple[Any, Any, Any, Any]:
    import torch

    params = pipeline.draw(seed, image.shape)
    cpu, cpu_label = pipeline.apply(image, label, params, spacing=SPACING)
    g_label = None if label is None else torch.from_numpy(label).cuda()
    gpu, gpu_label = pipeline.apply(
        torch.from_numpy(image).cuda(), g_label, params, spacing=SPACING
    )
    assert gpu.is_cuda and gpu.dtype == torch.float32
    torch.cuda.synchronize()
    return cpu, cpu_label, gpu.cpu().numpy(), None if gpu_label is None else gpu_label.cpu().numpy()


@pytest.mark.parametrize("image_interpolation", ["linear", "cubic"])
@pytest.mark.parametrize("label_interpolation", ["nearest", "linear"])
@pytest.mark.parametrize("border", ["constant", "edge"])
def test_spatial_matches_cpu(
    image_interpolation: str, label_interpolation: str, border: str
) -> None:
    image, label = batch()
    pipeline = Pipeline(
        spatial_steps(),
        patch_size=(15, 22, 19),
        image_interpolation=image_interpolation,
        label_interpolation=label_interpolation,
        border=border,
        border_value=-5.0,
    )
    cpu, cpu_label, gpu, gpu_label = both(pipeline, image, label, seed=1)
    np.testing.assert_allclose(gpu, cpu, atol=2e-3 * np.abs(cpu).max())
    assert gpu_label.dtype == cpu_label.dtype
    assert (gpu_label != cpu_label).mean() < 2e-3


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "int64", "bool"])
def test_label_dtypes_and_identity(dtype: str) -> None:
    import torch

    image, label = batch(n=2)
    label = (label % 2).astype(dtype)
    out, out_label = Pipeline([])(
        torch.from_numpy(image).cuda(), torch.from_numpy(label).cuda(), seed=0
    )
    assert np.array_equal(out.cpu().numpy(), image)
    assert np.array_equal(out_label.cpu().numpy(), label)


@pytest.mark.parametrize("name", INTENSITY)
def test_intensity_matches_cpu(name: str) -> None:
    image, _ = batch(seed=2)
    step: dict[str, Any] = {"name": name, "p": 1.0, "p_per_channel": 0.7}
    cpu, _, gpu, _ = both(Pipeline([step]), image, None, seed=3)
    np.testing.assert_allclose(gpu, cpu, atol=2e-5 * np.abs(cpu).max(), rtol=0)
    if name == "gamma":
        cpu, _, gpu, _ = both(
            Pipeline([{**step, "invert": True, "retain_stats": False}]), image, None, seed=4
        )
        np.testing.assert_allclose(gpu, cpu, atol=2e-5 * np.abs(cpu).max(), rtol=0)


def test_default_pipeline_matches_cpu_and_unbatched() -> None:
    import torch

    image, label = batch(seed=5, n=4, c=1, shape=(24, 25, 26))
    pipeline = Pipeline(default_config(), patch_size=(20, 20, 20))
    cpu, cpu_label, gpu, gpu_label = both(pipeline, image, label, seed=6)
    np.testing.assert_allclose(gpu, cpu, atol=2e-3 * np.abs(cpu).max())
    assert (gpu_label != cpu_label).mean() < 2e-3
    one, one_label = pipeline(
        torch.from_numpy(image[0]).cuda(), torch.from_numpy(label[0]).cuda(), seed=6
    )
    assert tuple(one.shape) == (1, 20, 20, 20) and tuple(one_label.shape) == (20, 20, 20)


def test_label_must_be_on_the_image_device() -> None:
    import torch

    from fastseg.errors import InputError

    image, label = batch(n=1)
    with pytest.raises(InputError, match="label"):
        Pipeline([])(torch.from_numpy(image).cuda(), label, seed=0)


def test_spatial_checks_shapes_and_dtype_before_the_kernel() -> None:
    """As the CPU binding: a wrong image dtype, label shape or map count is an InputError, not
    an out-of-bounds read on the device."""
    import torch

    from fastseg import _native
    from fastseg.errors import InputError

    image = torch.zeros((2, 1, 4, 5, 6), device="cuda")
    maps, has = np.zeros((2, 12), np.float32), np.zeros(2, np.uint8)
    rest = (1, 0, 0, 0.0, 0)
    with pytest.raises(InputError, match="image: expected a float32"):
        _native.augment_spatial(image.double(), None, (4, 5, 6), maps, None, has, *rest)
    with pytest.raises(InputError, match=r"label: expected shape \(2, 4, 5, 6\)"):
        label = torch.zeros((2, 4, 5, 5), dtype=torch.long, device="cuda")
        _native.augment_spatial(image, label, (4, 5, 6), maps, None, has, *rest)
    with pytest.raises(InputError, match="maps/coef/has_elastic"):
        _native.augment_spatial(image, None, (4, 5, 6), maps[:1], None, has, *rest)
    with pytest.raises(InputError, match="maps/coef/has_elastic"):
        coef = np.zeros((1, 2, 2, 2, 3), np.float32)
        _native.augment_spatial(image, None, (4, 5, 6), maps, coef, has, *rest)
