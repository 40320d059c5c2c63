"""Pipeline config (defaults, validation, YAML), seeding and replay, input checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fastseg.augment import Pipeline, default_config, step_names
from fastseg.augment._params import StepStreams, step_generator
from fastseg.errors import InputError


def sample(shape: tuple[int, ...] = (1, 9, 10, 11), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype(np.float32), rng.integers(0, 3, shape[-3:]).astype(
        np.uint8
    )


def full_config() -> list[dict[str, Any]]:
    return [
        {"name": "affine", "p_rotation": 1.0, "p_scale": 1.0, "translation": (-3.0, 3.0)},
        {"name": "elastic", "p": 1.0, "grid": (4, 5, 6)},
        {"name": "flip"},
        *({"name": n, "p": 1.0, "p_per_channel": 1.0} for n in step_names()[3:]),
    ]


def test_every_parameter_has_a_default() -> None:
    pipeline = Pipeline([{"name": n} for n in step_names()])
    steps = pipeline.to_config()["steps"]
    assert [s["name"] for s in steps] == list(step_names())
    affine = steps[0]
    assert affine["rotation"] == ((-30.0, 30.0),) * 3 and affine["scale"] == ((0.7, 1.4),) * 3
    assert affine["p_rotation"] == 0.2 and affine["p_scale"] == 0.2  # nnU-Net
    assert steps[step_names().index("gamma")]["gamma"] == (0.7, 1.5)
    assert all(0.0 <= s["p"] <= 1.0 for s in steps)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([{"name": "rotate"}], r"augment step 0: unknown name 'rotate'"),
        ([{"p": 0.5}], r"augment step 0: unknown name None"),
        (
            [{"name": "flip"}, {"name": "gamma", "gama": (1, 2)}],
            r"step 1 \('gamma'\): unknown parameter 'gama'",
        ),
        (
            [{"name": "noise", "p": 1.5}],
            r"step 0 \('noise'\): parameter 'p': expected a probability",
        ),
        ([{"name": "gamma", "gamma": (1.5, 0.7)}], r"parameter 'gamma': expected low <= high"),
        ([{"name": "gamma", "gamma": (0.0, 1.0)}], r"parameter 'gamma'"),
        ([{"name": "affine", "rotation": "big"}], r"parameter 'rotation'"),
        ([{"name": "affine", "isotropic": 1}], r"parameter 'isotropic': expected true or false"),
        ([{"name": "elastic", "grid": (4, 0, 4)}], r"parameter 'grid'"),
        ([{"name": "flip", "axes": (0, 3)}], r"parameter 'axes'"),
        ([{"name": "bias_field", "order": 9}], r"parameter 'order'"),
        ([{"name": "lowres", "zoom": (0.5, 2.0)}], r"parameter 'zoom'"),
        ([{"name": "noise", "sigma": float("nan")}], r"parameter 'sigma'"),
        (
            [{"name": "affine"}, {"name": "affine"}],
            r"step 1 \('affine'\): a spatial step may appear once",
        ),
        ([3], r"augment step 0: expected a mapping"),
        ({"name": "flip"}, r"expected a list of steps"),
    ],
)
def test_bad_config_names_the_step_and_parameter(config: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        Pipeline(config)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patch_size": (4, 4)}, "patch_size"),
        ({"patch_size": (4, 0, 4)}, "patch_size"),
        ({"border": "wrap"}, "border: expected one of constant, edge"),
        ({"image_interpolation": "nearest"}, "image_interpolation"),
        ({"label_interpolation": "cubic"}, "label_interpolation"),
        ({"border_value": float("inf")}, "border_value"),
        ({"label_border_value": 0.5}, "label_border_value"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        Pipeline([], **options)


def test_yaml_list_and_mapping(tmp_path: Path) -> None:
    plain = tmp_path / "plain.yaml"
    plain.write_text("- name: affine\n  p_rotation: 1.0\n- name: gamma\n  gamma: [0.8, 1.2]\n")
    pipeline = Pipeline.from_yaml(plain)
    assert [s["name"] for s in pipeline.steps] == ["affine", "gamma"]
    assert pipeline.steps[1]["gamma"] == (0.8, 1.2)

    import yaml

    full = Pipeline(
        full_config(), patch_size=(6, 7, 8), border="edge", label_interpolation="linear"
    )
    doc = full.to_config()
    dumped = tmp_path / "full.yaml"
    dumped.write_text(yaml.safe_dump(json.loads(json.dumps(doc))))
    again = Pipeline.from_yaml(dumped)
    assert again.to_config() == doc
    image, label = sample()
    a, la = full(image, label, seed=4)
    b, lb = again(image, label, seed=4)
    assert np.array_equal(a, b) and np.array_equal(la, lb)


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: [unclosed\n")
    with pytest.raises(InputError, match=r"bad\.yaml: not valid YAML"):
        Pipeline.from_yaml(bad)
    with pytest.raises(InputError, match=r"missing\.yaml: cannot read"):
        Pipeline.from_yaml(tmp_path / "missing.yaml")
    keys = tmp_path / "keys.yaml"
    keys.write_text("stepz: []\n")
    with pytest.raises(InputError, match=r"keys\.yaml: expected a list of steps or a mapping"):
        Pipeline.from_yaml(keys)
    step = tmp_path / "step.yaml"
    step.write_text("- name: blurr\n")
    with pytest.raises(InputError, match="unknown name 'blurr'"):
        Pipeline.from_yaml(step)


def test_seeded_runs_repeat_and_differ() -> None:
    image, label = sample()
    pipeline = Pipeline(full_config())
    a, la = pipeline(image, label, seed=1)
    b, lb = pipeline(image, label, seed=1)
    c, _ = pipeline(image, label, seed=2)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_draw_then_apply_replays_the_call() -> None:
    image, label = sample((2, 3, 9, 10, 11))
    label = np.stack([label, label[::-1]])
    pipeline = Pipeline(default_config(), patch_size=(8, 8, 8))
    out, out_label = pipeline(image, label, seed=9, spacing=(2.0, 1.0, 0.5))
    params = pipeline.draw(9, image.shape)
    again, again_label = pipeline.apply(image, label, params, spacing=(2.0, 1.0, 0.5))
    assert np.array_equal(out, again) and np.array_equal(out_label, again_label)
    assert json.loads(json.dumps(params[0].to_dict()))["seed"] == 9


def test_seed_none_is_recorded() -> None:
    pipeline = Pipeline(full_config())
    params = pipeline.draw(None, (1, 4, 4, 4))
    image = np.random.default_rng(0).normal(size=(1, 4, 4, 4)).astype(np.float32)
    a, _ = pipeline.apply(image, None, params)
    b, _ = pipeline(image, seed=params[0].seed)
    assert np.array_equal(a, b)


def test_sample_parameters_do_not_depend_on_other_steps() -> None:
    """Each step draws from its own stream: changing one step's p leaves the others' draws."""
    a = Pipeline([{"name": "affine", "p_rotation": 1.0}, {"name": "gamma", "p": 1.0}]).draw(
        3, (1, 2, 2, 2)
    )
    b = Pipeline([{"name": "affine", "p_rotation": 1.0}, {"name": "gamma", "p": 0.0}]).draw(
        3, (1, 2, 2, 2)
    )
    assert a[0].spatial.rotation == b[0].spatial.rotation


def test_elastic_draw_is_smooth_and_bounded() -> None:
    (p,) = Pipeline([{"name": "elastic", "p": 1.0, "magnitude": (5.0, 5.0), "grid": 6}]).draw(
        0, (1, 2, 2, 2)
    )
    field = p.spatial.elastic
    assert field is not None and field.shape == (6, 6, 6, 3)
    assert np.abs(field).max() == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("image_shape", "label_shape", "message"),
    [
        ((9, 10, 11), None, "image: expected"),
        ((1, 9, 10, 11), (9, 10, 12), "label: expected shape"),
        ((2, 1, 9, 10, 11), (3, 9, 10, 11), "label: expected shape"),
    ],
)
def test_bad_input_shapes(
    image_shape: tuple[int, ...], label_shape: tuple[int, ...] | None, message: str
) -> None:
    label = None if label_shape is None else np.zeros(label_shape, np.uint8)
    with pytest.raises(InputError, match=message):
        Pipeline([{"name": "flip"}])(np.zeros(image_shape, np.float32), label, seed=0)


def test_bad_inputs() -> None:
    image, label = sample()
    pipeline = Pipeline([{"name": "gamma"}])
    with pytest.raises(InputError, match="label: expected an integer or bool array"):
        pipeline(image, label.astype(np.float32), seed=0)
    with pytest.raises(InputError, match="spacing"):
        pipeline(image, label, seed=0, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(InputError, match="seed"):
        pipeline(image, label, seed=-1)
    with pytest.raises(InputError, match="expected a NumPy array or a CUDA tensor"):
        pipeline([[[[0.0]]]], None, seed=0)
    params = pipeline.draw(0, (2, 1, 9, 10, 11))
    with pytest.raises(InputError, match="params: expected 1 sample"):
        pipeline.apply(image, label, params)
    other = Pipeline([{"name": "noise"}]).draw(0, image.shape)
    with pytest.raises(InputError, match="params: drawn for intensity steps"):
        pipeline.apply(image, label, other)


def test_integer_images_are_converted_to_float32() -> None:
    image = np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape(2, 3, 4, 5)
    out, _ = Pipeline([])(image, seed=0)
    assert out.dtype == np.float32 and np.array_equal(out, image.astype(np.float32))


def test_real_hippocampus_case(shared_data: Path) -> None:
    from fastseg import io

    images = sorted((shared_data / "hippocampus" / "imagesTr").glob("*.nii.gz"))
    vol = io.read(images[0])
    lab = io.read(shared_data / "hippocampus" / "labelsTr" / images[0].name)
    pipeline = Pipeline(full_config(), patch_size=(32, 40, 32))
    out, out_label = pipeline(
        vol.array[None].astype(np.float32), lab.array.astype(np.uint8), seed=0, spacing=vol.spacing
    )
    assert out.shape == (1, 32, 40, 32) and np.isfinite(out).all()
    assert set(np.unique(out_label)) <= set(np.unique(lab.array))


def test_elastic_field_is_scipy_smoothed_noise() -> None:
    """The drawn control displacements: the step's normal noise smoothed as
    scipy.ndimage.gaussian_filter(mode="nearest") does, scaled to the drawn magnitude."""
    from scipy.ndimage import gaussian_filter

    step = {"name": "elastic", "p": 1.0, "grid": (4, 5, 6), "sigma": 1.3, "magnitude": (2.0, 6.0)}
    (p,) = Pipeline([{"name": "flip"}, step]).draw(21, (1, 2, 2, 2))
    rng = step_generator(21, 0, 1)
    rng.random()  # the step's p draw
    magnitude = rng.uniform(2.0, 6.0)
    noise = gaussian_filter(
        rng.standard_normal((4, 5, 6, 3)), sigma=(1.3, 1.3, 1.3, 0.0), mode="nearest"
    )
    np.testing.assert_allclose(
        p.spatial.elastic, noise * magnitude / np.abs(noise).max(), rtol=1e-12
    )


def test_step_streams_are_the_keyed_generators() -> None:
    """Re-keying the shared generator gives exactly the stream of a fresh keyed one, whatever
    was drawn before, and distinct (seed, sample, step) give distinct streams."""
    streams = StepStreams()
    seen = set()
    for seed, index, step in [(0, 0, 0), (2**63 + 5, 7, 3), (0, 1, 0), (0, 0, 1), (1, 0, 0)]:
        streams(9, 9, 9).random(5)  # leave the shared generator mid-stream
        got = streams(seed, index, step).random(6)
        np.testing.assert_array_equal(got, step_generator(seed, index, step).random(6))
        seen.add(tuple(got))
    assert len(seen) == 5


@pytest.mark.parametrize("name", ["noise", "blur", "brightness", "contrast", "lowres", "gamma"])
def test_a_step_not_applied_carries_identity_parameters(name: str) -> None:
    """p = 0: no channel active and the step's neutral values, valid for the kernels even when
    forced active (then the image is unchanged up to rounding)."""
    pipeline = Pipeline([{"name": name, "p": 0.0}])
    (params,) = pipeline.draw(3, (1, 2, 6, 7, 8))
    (op,) = params.intensity
    assert not op.active.any()
    image = np.random.default_rng(0).normal(size=(1, 2, 6, 7, 8)).astype(np.float32)
    assert np.array_equal(pipeline.apply(image, None, [params])[0], image)
    forced = type(op)(name=op.name, active=np.ones(2, dtype=bool), values=op.values, key=op.key)
    replay = type(params)(params.seed, params.index, params.spatial, (forced,))
    np.testing.assert_allclose(pipeline.apply(image, None, [replay])[0], image, atol=1e-5)
