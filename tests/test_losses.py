"""Softmax cross-entropy against a plain float64 formula, its fused gradient against central
differences, stability at huge logits, dtypes, accuracy, and bad inputs."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyid.backend import get_backend, to_numpy
from tinyid.losses import accuracy, cross_entropy, log_softmax, softmax, softmax_cross_entropy


def reference_loss(logits, labels):
    """Mean over rows of ``logsumexp(s_i) - s_i[y_i]``, written out in float64 with math.fsum."""
    logits = np.asarray(logits, dtype=np.float64)
    terms = []
    for row, y in zip(logits, labels):
        values = [float(v) for v in row]
        m = max(values)
        lse = m + math.log(math.fsum(math.exp(v - m) for v in values))
        terms.append(lse - values[int(y)])
    return math.fsum(terms) / len(terms)


def reference_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    lse = np.logaddexp.reduce(logits, axis=1, keepdims=True)
    return np.exp(logits - lse)


def central_difference(logits, labels, h=1e-6):
    """d(loss)/d(logits) by float64 central differences over every entry."""
    logits = np.array(logits, dtype=np.float64)
    grad = np.zeros_like(logits)
    for idx in np.ndindex(logits.shape):
        old = logits[idx]
        logits[idx] = old + h
        plus = reference_loss(logits, labels)
        logits[idx] = old - h
        minus = reference_loss(logits, labels)
        logits[idx] = old
        grad[idx] = (plus - minus) / (2 * h)
    return grad


def make_case(seed, n_batch, n_classes, scale, transpose=False):
    rng = np.random.default_rng(seed)
    if transpose:  # a non-contiguous (Fortran-ordered) view
        logits = (scale * rng.standard_normal((n_classes, n_batch))).T
    else:
        logits = scale * rng.standard_normal((n_batch, n_classes))
    labels = rng.integers(0, n_classes, n_batch)
    return logits, labels


# ------------------------------------------------------------------------------ loss and gradient
@settings(max_examples=40)
@given(
    n_batch=st.integers(1, 7),
    n_classes=st.integers(1, 7),
    scale=st.sampled_from([0.01, 0.3, 1.0, 3.0, 10.0, 30.0]),
    transpose=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_loss_and_gradient_match_float64_formula_and_central_differences(n_batch, n_classes, scale, transpose, seed):
    logits, labels = make_case(seed, n_batch, n_classes, scale, transpose)
    before = logits.copy()
    loss, dlogits = softmax_cross_entropy(logits, labels)

    assert isinstance(loss, float)
    assert loss == pytest.approx(reference_loss(logits, labels), rel=1e-12, abs=1e-12)
    assert cross_entropy(logits, labels) == pytest.approx(loss, rel=1e-14, abs=1e-15)

    assert dlogits.shape == logits.shape and dlogits.dtype == np.float64
    numeric = central_difference(logits, labels)
    np.testing.assert_allclose(dlogits, numeric, rtol=1e-6, atol=1e-7)
    # and against the closed form (softmax - onehot) / B computed independently
    onehot = np.eye(n_classes)[labels]
    np.testing.assert_allclose(dlogits, (reference_softmax(logits) - onehot) / n_batch, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-15)
    np.testing.assert_array_equal(logits, before)  # the input is not modified


def test_gradient_check_would_catch_a_missing_batch_mean():
    """The central-difference check is sharp enough to see a gradient off by the factor 1/B."""
    logits, labels = make_case(0, 3, 4, 1.0)
    _, dlogits = softmax_cross_entropy(logits, labels)
    numeric = central_difference(logits, labels)
    assert not np.allclose(dlogits * 3, numeric, rtol=1e-6, atol=1e-7)


def test_known_values():
    # uniform logits: loss log(C), gradient (1/C - onehot)/B
    loss, d = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    assert loss == pytest.approx(math.log(4), rel=1e-15)
    np.testing.assert_allclose(d, (np.full((2, 4), 0.25) - np.eye(4)[[0, 3]]) / 2, rtol=0, atol=1e-17)
    # a single class: loss 0, gradient 0
    loss, d = softmax_cross_entropy(np.array([[5.0], [-3.0]]), np.array([0, 0]))
    assert loss == 0.0 and np.all(d == 0)
    # labels may be a list of ints
    assert softmax_cross_entropy(np.zeros((2, 3)), [1, 2])[0] == pytest.approx(math.log(3))


# ------------------------------------------------------------------------------ stability
@pytest.mark.parametrize("dtype, big", [(np.float32, 1e4), (np.float64, 1e4), (np.float64, 1e30)])
def test_huge_logits_give_finite_correct_limits_and_no_warnings(dtype, big):
    logits = np.array([
        [big, -big, 0.0],   # confidently right (label 0): contributes 0
        [big, -big, 0.0],   # confidently wrong (label 1): contributes the gap 2 * big
        [0.0, big, big],    # a tie at the top, label among the tied: contributes log 2
        [-big, -big, -big],  # all equal and hugely negative: log 3
    ], dtype=dtype)
    labels = np.array([0, 1, 2, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, d = softmax_cross_entropy(logits, labels)
        p = softmax(logits)
        lp = log_softmax(logits)
        ce = cross_entropy(logits, labels)
    expected = (0.0 + 2 * big + math.log(2) + math.log(3)) / 4
    assert math.isfinite(loss) and loss == pytest.approx(expected, rel=1e-6)
    assert ce == loss
    assert d.dtype == dtype and p.dtype == dtype and lp.dtype == dtype
    assert np.all(np.isfinite(d)) and np.all(np.isfinite(p)) and np.all(np.isfinite(lp))
    tol = 1e-6 if dtype == np.float32 else 1e-15
    expected_d = np.array([
        [0.0, 0.0, 0.0],
        [1.0, -1.0, 0.0],
        [0.0, 0.5, -0.5],
        [1 / 3 - 1, 1 / 3, 1 / 3],
    ]) / 4
    np.testing.assert_allclose(d, expected_d, rtol=0, atol=tol)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=tol)
    np.testing.assert_allclose(lp[0], [0.0, -2 * big, -big], rtol=1e-6)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1e4), (np.float64, 1e4), (np.float64, 1e30)])
def test_random_huge_logits_match_the_float64_formula(dtype, scale):
    logits, labels = make_case(1, 9, 5, scale)
    logits = logits.astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, d = softmax_cross_entropy(logits, labels)
    assert loss == pytest.approx(reference_loss(logits, labels), rel=1e-6 if dtype == np.float32 else 1e-12)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(d, (reference_softmax(logits) - onehot) / 9, rtol=0,
                               atol=1e-6 if dtype == np.float32 else 1e-15)


# ------------------------------------------------------------------------------ dtypes and softmax
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(dtype):
    logits, labels = make_case(2, 6, 4, 2.0)
    logits = logits.astype(dtype)
    loss, d = softmax_cross_entropy(logits, labels)
    assert d.dtype == dtype
    assert softmax(logits).dtype == dtype and log_softmax(logits).dtype == dtype
    assert loss == pytest.approx(reference_loss(logits, labels), rel=1e-6 if dtype == np.float32 else 1e-13)
    np.testing.assert_allclose(d.sum(axis=1), 0.0, atol=1e-7 if dtype == np.float32 else 1e-16)


@settings(max_examples=30)
@given(n_batch=st.integers(1, 6), n_classes=st.integers(1, 6),
       scale=st.sampled_from([1e-3, 1.0, 50.0, 1e4, 1e30]), seed=st.integers(0, 2**16))
def test_softmax_rows_sum_to_one_and_match_the_reference(n_batch, n_classes, scale, seed):
    logits, _ = make_case(seed, n_batch, n_classes, scale)
    p = softmax(logits)
    assert p.shape == logits.shape
    assert np.all(p >= 0) and np.all(p <= 1)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-14)
    np.testing.assert_allclose(p, reference_softmax(logits), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(log_softmax(logits), logits - np.logaddexp.reduce(logits, axis=1, keepdims=True),
                               rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ accuracy
def test_accuracy_counts_rows_whose_largest_logit_is_the_label():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.2, 0.9], [1.0, 0.0, -1.0]])
    assert accuracy(logits, np.array([0, 1, 2, 0])) == 1.0
    assert accuracy(logits, np.array([0, 1, 2, 2])) == 0.75
    assert accuracy(logits, np.array([1, 2, 0, 1])) == 0.0
    assert accuracy(logits, [0, 0, 0, 0]) == 0.5
    # probabilities give the same answer as logits
    assert accuracy(softmax(logits), np.array([0, 1, 2, 2])) == 0.75
    assert isinstance(accuracy(logits, np.array([0, 1, 2, 2])), float)


# ------------------------------------------------------------------------------ bad inputs
BAD_INPUTS = [
    pytest.param(np.zeros((3, 4)), np.array([0, 1, 4]), r"labels must lie in \[0, 3\]", id="label-too-large"),
    pytest.param(np.zeros((3, 4)), np.array([0, -1, 2]), r"labels must lie in \[0, 3\]", id="label-negative"),
    pytest.param(np.zeros((2, 4)), np.array([0.0, 1.0]), "integer", id="float-labels"),
    pytest.param(np.zeros((2, 4)), np.array([True, False]), "integer", id="bool-labels"),
    pytest.param(np.zeros((2, 4)), np.array(["a", "b"]), "integer", id="string-labels"),
    pytest.param(np.zeros((3, 4)), np.array([0, 1]), r"labels must be a 1-D array of 3", id="too-few-labels"),
    pytest.param(np.zeros((3, 4)), np.zeros((3, 1), dtype=int), r"got shape \(3, 1\)", id="2d-labels"),
    pytest.param(np.zeros((3, 4)), np.array(1), r"got shape \(\)", id="scalar-label"),
    pytest.param(np.zeros(4), np.array([0]), r"logits must be a 2-D", id="1d-logits"),
    pytest.param(np.zeros((2, 3, 4)), np.array([0, 1]), r"logits must be a 2-D", id="3d-logits"),
    pytest.param(np.zeros((0, 4)), np.zeros(0, dtype=int), r"empty|at least one", id="empty-batch"),
]


@pytest.mark.parametrize("function", [softmax_cross_entropy, cross_entropy, accuracy])
@pytest.mark.parametrize("logits, labels, message", BAD_INPUTS)
def test_bad_inputs_raise_one_clear_value_error(function, logits, labels, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=message):
            function(logits, labels)


# ------------------------------------------------------------------------------ backends
def test_loss_on_every_backend_matches_the_numpy_reference(backend_name):
    xp = get_backend(backend_name).xp
    logits, labels = make_case(3, 7, 5, 4.0)
    loss, d = softmax_cross_entropy(xp.asarray(logits), xp.asarray(labels))
    assert type(d) is type(xp.asarray(logits))
    assert loss == pytest.approx(reference_loss(logits, labels), rel=1e-12)
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(to_numpy(d), (reference_softmax(logits) - onehot) / 7, rtol=1e-12, atol=1e-15)
    assert accuracy(xp.asarray(logits), xp.asarray(labels)) == float(np.mean(logits.argmax(1) == labels))
