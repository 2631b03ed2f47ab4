"""pyrobust.noise.clean_subset: T counted from trusted labels (paper, section 5.3)."""

from __future__ import annotations

import numpy as np
import pytest

from pyrobust import noise


def test_from_clean_subset_counts_rows():
    clean = np.array([0, 0, 0, 0, 1, 1, 2])
    noisy = np.array([0, 0, 1, 2, 1, 0, 2])
    want = [[0.5, 0.25, 0.25], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]
    np.testing.assert_allclose(noise.from_clean_subset(clean, noisy, 3).numpy(), want, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match=r"classes \[3\] have no clean example"):
        noise.from_clean_subset(clean, noisy, 4)
    with pytest.raises(ValueError, match="differ in length"):
        noise.from_clean_subset(clean, noisy[:-1], 3)
