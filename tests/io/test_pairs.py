from __future__ import annotations

import numpy as np
import pytest

from fastseg.errors import GeometryMismatchError
from fastseg.io import Volume, check_pair, read


def test_matching_pair_passes_within_tolerance():
    image = Volume(np.zeros((2, 3, 4)), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    check_pair(image, Volume(np.zeros((2, 3, 4), np.uint8), (1.0, 1.0, 1.0 + 1e-5), (0, 1e-4, 0)))


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        (Volume(np.zeros((2, 3, 4)), (1.0, 1.0, 1.2)), "spacing (1, 1, 1) vs (1, 1, 1.2)"),
        (Volume(np.zeros((2, 3, 5))), "shape (2, 3, 4) vs (2, 3, 5)"),
        (Volume(np.zeros((2, 3, 4)), origin=(0, 0, 0.5)), "origin (0, 0, 0) vs (0, 0, 0.5)"),
        (Volume(np.zeros((2, 3, 4)), direction=np.diag([1.0, -1.0, 1.0])), "direction"),
    ],
)
def test_mismatch_names_both_files_and_the_difference(label, expected):
    image = Volume(np.zeros((2, 3, 4)))
    with pytest.raises(GeometryMismatchError) as err:
        check_pair(image, label, "img.nii.gz", "lbl.nii.gz")
    msg = str(err.value)
    assert "img.nii.gz" in msg and "lbl.nii.gz" in msg and expected in msg


@pytest.mark.realdata
def test_real_pairs(shared_data):
    hippo = shared_data / "hippocampus"
    check_pair(
        read(hippo / "imagesTr" / "hippocampus_003.nii.gz"),
        read(hippo / "labelsTr" / "hippocampus_003.nii.gz"),
    )
    ct, seg = (
        shared_data / "ct" / "abdomen_ct.nii.gz",
        shared_data / "ct" / "abdomen_ct_silver_seg.nii.gz",
    )
    check_pair(read(ct), read(seg), ct, seg)
    chest = shared_data / "ct" / "chest_ct_lps.nii.gz"
    with pytest.raises(
        GeometryMismatchError, match=r"chest_ct_lps\.nii\.gz and .*abdomen_ct_silver_seg"
    ):
        check_pair(read(chest), read(seg), chest, seg)
