"""tinyid.plots helpers that compute something (the figures themselves are exercised by the experiments)."""
import numpy as np

from tinyid.plots import running_mean


def test_running_mean_places_each_mean_at_the_end_of_its_window():
    steps, means = running_mean([1.0, 2.0, 3.0, 4.0, 5.0], 2)
    np.testing.assert_array_equal(steps, [2, 3, 4, 5])
    np.testing.assert_allclose(means, [1.5, 2.5, 3.5, 4.5])
    steps, means = running_mean([1.0, 3.0], 5)  # too short to smooth: unchanged
    np.testing.assert_array_equal(steps, [1, 2])
    np.testing.assert_array_equal(means, [1.0, 3.0])
