"""SGD and Adam against reference loops written from PyTorch's documented update rules, in-place
updates, exact resumption through state_dict, and the errors of bad hyperparameters, gradients and states."""
import copy
import json
import math

import numpy as np
import pytest

from tinyid import optim
from tinyid.backend import get_backend, to_numpy
from tinyid.optim import SGD, Adam

SHAPES = [[(3, 5), (5,)], [(5, 2), (2,)]]
N_STEPS = 7


def make_params(seed=0, dtype=np.float64, shapes=SHAPES):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in group] for group in shapes]


def make_grads(params, t, seed=100):
    """A gradient that depends on the current parameters and on the step (a noisy quadratic bowl)."""
    rng = np.random.default_rng(seed + t)
    return [[0.7 * p + rng.standard_normal(p.shape).astype(p.dtype) for p in group] for group in params]


def flat(params):
    return [p for group in params for p in group]


# ------------------------------------------------------------------------------ reference loops
def reference_sgd(params, n_steps, lr, momentum=0.0, nesterov=False, weight_decay=0.0):
    """torch.optim.SGD with dampening 0, one parameter at a time, on copies."""
    params = [[p.copy() for p in group] for group in params]
    bufs = {}
    trajectory = []
    for t in range(1, n_steps + 1):
        grads = make_grads(params, t)
        for gi, group in enumerate(params):
            for pi, p in enumerate(group):
                g = grads[gi][pi]
                if weight_decay != 0:
                    g = g + weight_decay * p
                if momentum != 0:
                    if t == 1:
                        buf = g.copy()
                    else:
                        buf = momentum * bufs[gi, pi] + g
                    bufs[gi, pi] = buf
                    if nesterov:
                        g = g + momentum * buf
                    else:
                        g = buf
                group[pi] = p - lr * g
        trajectory.append([p.copy() for p in flat(params)])
    return trajectory


def reference_adam(params, n_steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    """torch.optim.Adam (amsgrad off), one parameter at a time, on copies."""
    beta1, beta2 = betas
    params = [[p.copy() for p in group] for group in params]
    m = {}
    v = {}
    trajectory = []
    for t in range(1, n_steps + 1):
        grads = make_grads(params, t)
        for gi, group in enumerate(params):
            for pi, p in enumerate(group):
                g = grads[gi][pi]
                if weight_decay != 0:
                    g = g + weight_decay * p
                m[gi, pi] = beta1 * m.get((gi, pi), 0.0) + (1 - beta1) * g
                v[gi, pi] = beta2 * v.get((gi, pi), 0.0) + (1 - beta2) * g * g
                m_hat = m[gi, pi] / (1 - beta1**t)
                v_hat = v[gi, pi] / (1 - beta2**t)
                group[pi] = p - lr * m_hat / (np.sqrt(v_hat) + eps)
        trajectory.append([p.copy() for p in flat(params)])
    return trajectory


CONFIGS = [
    pytest.param(SGD, dict(lr=0.1), reference_sgd, id="sgd"),
    pytest.param(SGD, dict(lr=0.05, weight_decay=0.01), reference_sgd, id="sgd-wd"),
    pytest.param(SGD, dict(lr=0.05, momentum=0.9), reference_sgd, id="sgd-momentum"),
    pytest.param(SGD, dict(lr=0.05, momentum=0.5, weight_decay=0.1), reference_sgd, id="sgd-momentum-wd"),
    pytest.param(SGD, dict(lr=0.05, momentum=0.9, nesterov=True), reference_sgd, id="sgd-nesterov"),
    pytest.param(SGD, dict(lr=0.03, momentum=0.8, nesterov=True, weight_decay=0.05), reference_sgd,
                 id="sgd-nesterov-wd"),
    pytest.param(Adam, dict(), reference_adam, id="adam-defaults"),
    pytest.param(Adam, dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6), reference_adam, id="adam"),
    pytest.param(Adam, dict(lr=0.01, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.2), reference_adam, id="adam-wd"),
    pytest.param(Adam, dict(lr=0.01, betas=(0.0, 0.0)), reference_adam, id="adam-zero-betas"),
]


@pytest.mark.parametrize("cls, hyper, reference", CONFIGS)
def test_updates_match_the_reference_loop_in_place(cls, hyper, reference):
    params = make_params()
    start = copy.deepcopy(params)
    objects = [id(p) for p in flat(params)]
    expected = reference(start, N_STEPS, **hyper)
    opt = cls(params, **hyper)
    assert [id(p) for p in opt.params] == objects
    for t in range(1, N_STEPS + 1):
        grads = make_grads(params, t)
        grads_before = copy.deepcopy(grads)
        assert opt.step(grads) is None
        assert opt.step_count == t
        # the same arrays, updated in place, equal to the reference after every step
        assert [id(p) for p in flat(params)] == objects
        assert [id(p) for p in opt.params] == objects
        for got, want in zip(flat(params), expected[t - 1]):
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
        # the gradients the caller passed are not modified
        for g, g0 in zip(flat(grads), flat(grads_before)):
            np.testing.assert_array_equal(g, g0)
    # and the run really moved the parameters
    assert not np.allclose(flat(params)[0], flat(start)[0])


def test_reference_comparison_would_see_nesterov_confused_with_plain_momentum():
    """The two momentum flavours differ by far more than the tolerance, so the comparison is sharp."""
    a = reference_sgd(make_params(), 3, lr=0.05, momentum=0.9)
    b = reference_sgd(make_params(), 3, lr=0.05, momentum=0.9, nesterov=True)
    assert not np.allclose(a[-1][0], b[-1][0], rtol=1e-6)


@pytest.mark.parametrize("cls, hyper", [(SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)),
                                        (Adam, dict(lr=0.01, weight_decay=0.1))])
def test_float32_parameters_stay_float32(cls, hyper):
    params = make_params(dtype=np.float32)
    ref = reference_sgd if cls is SGD else reference_adam
    expected = ref(make_params(dtype=np.float64), 3, **hyper)
    opt = cls(params, **hyper)
    for t in range(1, 4):
        opt.step(make_grads(params, t))
    for p, want in zip(flat(params), expected[-1]):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p, want, rtol=1e-4, atol=1e-5)
    for bufs in opt.buffers.values():
        assert all(b.dtype == np.float32 for b in bufs)


def test_buffers_do_not_alias_the_gradients():
    params = make_params()
    opt = SGD(params, lr=0.1, momentum=0.9)
    grads = make_grads(params, 1)
    opt.step(grads)
    saved = copy.deepcopy(opt.buffers)
    for g in flat(grads):
        g[...] = 1e6
    for b, b0 in zip(opt.buffers["momentum"], saved["momentum"]):
        np.testing.assert_array_equal(b, b0)


# ------------------------------------------------------------------------------ state_dict
RESUME_CONFIGS = [
    (SGD, dict(lr=0.05)),
    (SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (Adam, dict(lr=0.01, weight_decay=0.01)),
]


@pytest.mark.parametrize("cls, hyper", RESUME_CONFIGS)
def test_state_dict_round_trip_continues_identically(cls, hyper):
    params = make_params()
    opt = cls(params, **hyper)
    for t in range(1, 4):
        opt.step(make_grads(params, t))
    state = opt.state_dict()
    json.dumps({k: v for k, v in state.items() if k != "buffers"})  # everything but the buffers is JSON-able
    assert state["name"] == cls.name and state["step_count"] == 3
    assert state["hyperparameters"] == opt.hyperparameters()
    assert sorted(state["buffers"]) == sorted(cls(make_params(), **hyper).buffers)

    # a fresh optimizer (new arrays, same values) picks up from the state
    twin_params = copy.deepcopy(params)
    twin = cls(twin_params, **hyper)
    twin.load_state_dict(state)
    assert twin.step_count == 3
    # the state is a snapshot: changing it afterwards, or stepping the original, touches neither side
    for bufs in state["buffers"].values():
        for b in bufs:
            b[...] = 123.0
    for t in range(4, 9):
        opt.step(make_grads(params, t))
        twin.step(make_grads(twin_params, t))
        for a, b in zip(flat(params), flat(twin_params)):
            np.testing.assert_array_equal(a, b)
    assert twin.step_count == opt.step_count == 8


def test_state_dict_is_a_copy_of_the_buffers():
    params = make_params()
    opt = Adam(params, lr=0.01)
    opt.step(make_grads(params, 1))
    state = opt.state_dict()
    m0 = state["buffers"]["m"][0].copy()
    opt.step(make_grads(params, 2))
    np.testing.assert_array_equal(state["buffers"]["m"][0], m0)
    assert state["step_count"] == 1


def _stepped(cls, hyper, seed=0, shapes=SHAPES, steps=2):
    params = make_params(seed, shapes=shapes)
    opt = cls(params, **hyper)
    for t in range(1, steps + 1):
        opt.step(make_grads(params, t))
    return opt


BAD_STATES = [
    pytest.param(lambda: _stepped(Adam, dict(lr=0.01)).state_dict(), "for 'adam'", id="other-optimizer"),
    pytest.param(lambda: _stepped(SGD, dict(lr=0.1)).state_dict(), "buffers", id="no-momentum-buffer"),
    pytest.param(lambda: _stepped(SGD, dict(lr=0.1, momentum=0.9), shapes=[[(3, 4), (4,)], [(4, 2), (2,)]])
                 .state_dict(), "shape", id="wrong-shapes"),
    pytest.param(lambda: _stepped(SGD, dict(lr=0.1, momentum=0.9), shapes=[[(3, 5), (5,)]]).state_dict(),
                 "2 'momentum' buffers for 4 parameters", id="wrong-count"),
    pytest.param(lambda: {**_stepped(SGD, dict(lr=0.1, momentum=0.9)).state_dict(), "step_count": None},
                 "step", id="bad-step-count"),
    pytest.param(lambda: {k: v for k, v in _stepped(SGD, dict(lr=0.1, momentum=0.9), steps=3).state_dict().items()
                          if k != "step_count"}, "step", id="missing-step-count"),
]


@pytest.mark.parametrize("make_state, message", BAD_STATES)
def test_mismatched_state_raises_and_changes_nothing(make_state, message):
    params = make_params(7)
    opt = SGD(params, lr=0.1, momentum=0.9)
    opt.step(make_grads(params, 1))
    before = opt.state_dict()
    params_before = copy.deepcopy(params)
    with pytest.raises(ValueError, match=message):
        opt.load_state_dict(make_state())
    after = opt.state_dict()
    assert after["step_count"] == before["step_count"] == 1
    for a, b in zip(after["buffers"]["momentum"], before["buffers"]["momentum"]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(flat(params), flat(params_before)):
        np.testing.assert_array_equal(a, b)
    # and it goes on exactly like an optimizer that never saw the bad state
    twin_params = copy.deepcopy(params_before)
    twin = SGD(twin_params, lr=0.1, momentum=0.9)
    twin.load_state_dict(before)
    opt.step(make_grads(params, 2))
    twin.step(make_grads(twin_params, 2))
    for a, b in zip(flat(params), flat(twin_params)):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------ validation
BAD_HYPERPARAMETERS = [
    pytest.param(lambda p: SGD(p, lr=0.0), "lr", id="sgd-lr-zero"),
    pytest.param(lambda p: SGD(p, lr=-0.1), "lr", id="sgd-lr-negative"),
    pytest.param(lambda p: SGD(p, lr=math.nan), "lr", id="sgd-lr-nan"),
    pytest.param(lambda p: SGD(p, lr=math.inf), "lr", id="sgd-lr-inf"),
    pytest.param(lambda p: SGD(p, lr=0.1, momentum=1.0), "momentum", id="momentum-one"),
    pytest.param(lambda p: SGD(p, lr=0.1, momentum=1.5), "momentum", id="momentum-above-one"),
    pytest.param(lambda p: SGD(p, lr=0.1, momentum=-0.1), "momentum", id="momentum-negative"),
    pytest.param(lambda p: SGD(p, lr=0.1, nesterov=True), "nesterov", id="nesterov-without-momentum"),
    pytest.param(lambda p: SGD(p, lr=0.1, weight_decay=-1e-4), "weight_decay", id="sgd-negative-decay"),
    pytest.param(lambda p: Adam(p, lr=0.0), "lr", id="adam-lr-zero"),
    pytest.param(lambda p: Adam(p, lr=-1.0), "lr", id="adam-lr-negative"),
    pytest.param(lambda p: Adam(p, betas=(1.0, 0.999)), "betas", id="beta1-one"),
    pytest.param(lambda p: Adam(p, betas=(0.9, 1.0)), "betas", id="beta2-one"),
    pytest.param(lambda p: Adam(p, betas=(-0.1, 0.999)), "betas", id="beta-negative"),
    pytest.param(lambda p: Adam(p, betas=(math.nan, 0.999)), "betas", id="beta-nan"),
    pytest.param(lambda p: Adam(p, betas=(0.9,)), "betas", id="one-beta"),
    pytest.param(lambda p: Adam(p, betas=(0.9, 0.99, 0.9)), "betas", id="three-betas"),
    pytest.param(lambda p: Adam(p, betas=0.9), "betas", id="beta-scalar"),
    pytest.param(lambda p: Adam(p, betas=("a", "b")), "betas", id="beta-strings"),
    pytest.param(lambda p: Adam(p, eps=0.0), "eps", id="eps-zero"),
    pytest.param(lambda p: Adam(p, weight_decay=-0.1), "weight_decay", id="adam-negative-decay"),
]


@pytest.mark.parametrize("build, message", BAD_HYPERPARAMETERS)
def test_bad_hyperparameters_raise_value_error(build, message):
    with pytest.raises(ValueError, match=message):
        build(make_params())


def test_boundary_hyperparameters_are_accepted():
    SGD(make_params(), lr=1e-12, momentum=0.0, weight_decay=0.0)
    SGD(make_params(), lr=0.1, momentum=0.999, nesterov=True)
    Adam(make_params(), betas=(0.0, 0.0), eps=1e-30)


def test_bad_params_raise():
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="list of"):
        SGD([1.0, 2.0], lr=0.1)


GRAD_CASES = [
    pytest.param(lambda g: g[:-1], "got 2 gradient arrays for 4 parameters", id="one-group-short"),
    pytest.param(lambda g: [[g[0][0]], g[1]], "3 gradient arrays for 4 parameters", id="missing-bias"),
    pytest.param(lambda g: g + [[np.zeros(2)]], "5 gradient arrays for 4 parameters", id="one-too-many"),
    pytest.param(lambda g: [g[0], [g[1][0], np.zeros(3)]], r"gradient 3 has shape \(3,\), its parameter \(2,\)",
                 id="last-bias-wrong-shape"),
    pytest.param(lambda g: [g[0], [g[1][0].T, g[1][1]]], r"gradient 2 has shape \(2, 5\)", id="transposed-W"),
]


@pytest.mark.parametrize("cls, hyper", [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.1))])
@pytest.mark.parametrize("mangle, message", GRAD_CASES)
def test_gradients_of_wrong_shape_or_count_raise_and_change_nothing(cls, hyper, mangle, message):
    params = make_params()
    opt = cls(params, **hyper)
    opt.step(make_grads(params, 1))
    before = copy.deepcopy(params)
    state = opt.state_dict()
    with pytest.raises(ValueError, match=message):
        opt.step(mangle(make_grads(params, 2)))
    for a, b in zip(flat(params), flat(before)):
        np.testing.assert_array_equal(a, b)
    assert opt.step_count == 1
    for name, bufs in opt.state_dict()["buffers"].items():
        for a, b in zip(bufs, state["buffers"][name]):
            np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------ optim.get
def test_get_builds_by_name():
    params = make_params()
    sgd = optim.get("sgd", params, lr=0.1, momentum=0.9, nesterov=True)
    assert type(sgd) is SGD
    assert sgd.hyperparameters() == {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.0}
    adam = optim.get("adam", params, lr=0.01, betas=[0.8, 0.9])
    assert type(adam) is Adam
    assert adam.hyperparameters() == {"lr": 0.01, "betas": [0.8, 0.9], "eps": 1e-8, "weight_decay": 0.0}
    assert adam.params[0] is params[0][0]
    # hyperparameters() feed back into get(): the checkpoint path
    again = optim.get(sgd.name, make_params(), **sgd.hyperparameters())
    assert again.hyperparameters() == sgd.hyperparameters()
    assert repr(sgd) == "SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.0)"


@pytest.mark.parametrize("name, kwargs, message", [
    ("rmsprop", dict(lr=0.1), "unknown optimizer 'rmsprop'; choose one of sgd, adam"),
    ("SGD", dict(lr=0.1), "unknown optimizer 'SGD'"),
    (None, dict(lr=0.1), "unknown optimizer None"),
    (["sgd"], dict(lr=0.1), "unknown optimizer"),
    ("sgd", dict(), "bad arguments for optimizer 'sgd'"),
    ("sgd", dict(lr=0.1, beta=0.9), "bad arguments for optimizer 'sgd'"),
    ("adam", dict(momentum=0.9), "bad arguments for optimizer 'adam'"),
    ("sgd", dict(lr=-1.0), "lr must be"),
])
def test_get_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        optim.get(name, make_params(), **kwargs)


# ------------------------------------------------------------------------------ backends
@pytest.mark.parametrize("cls, hyper, reference", [CONFIGS[5], CONFIGS[8]])
def test_every_backend_matches_the_reference(backend_name, cls, hyper, reference):
    backend = get_backend(backend_name)
    host = make_params()
    expected = reference(host, 3, **hyper)
    params = [[backend.asarray(p) for p in group] for group in host]
    objects = [id(p) for p in flat(params)]
    opt = cls(params, **hyper)
    for t in range(1, 4):
        host_now = [[to_numpy(p) for p in group] for group in params]
        opt.step([[backend.asarray(g) for g in group] for group in make_grads(host_now, t)])
    assert [id(p) for p in flat(params)] == objects
    for p, want in zip(flat(params), expected[-1]):
        np.testing.assert_allclose(to_numpy(p), want, rtol=1e-12, atol=1e-14)
    state = opt.state_dict()
    assert all(type(b) is np.ndarray for bufs in state["buffers"].values() for b in bufs)
