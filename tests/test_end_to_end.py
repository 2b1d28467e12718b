"""Whole training runs on real data: the models learn what the README says they learn."""
import math

import pytest

from tinyid import MLP, fit
from tinyid.data import DatasetNotFoundError, load_dataset


def test_tanh_xavier_mlp_learns_shapeset_well_above_chance():
    data = load_dataset("shapeset", n_train=20_000, n_test=1000, seed=0, standardize=True)
    model = MLP([1024, 200, 200, 200, 9], activation="tanh", init="xavier_uniform", seed=0)
    history = fit(model, data.x_train, data.y_train, epochs=4, batch_size=64, lr=0.01, momentum=0.9,
                  validation=(data.x_test, data.y_test), progress=False)
    chance = 1 / 9
    standard_error = math.sqrt(chance * (1 - chance) / 1000)
    assert history.epochs[-1]["test_acc"] > chance + 8 * standard_error  # about 0.19


def fashion_mnist_or_skip(**kwargs):
    try:
        return load_dataset("fashion-mnist", **kwargs)
    except DatasetNotFoundError as exc:
        pytest.skip(f"Fashion-MNIST is not installed here (apt-get install dataset-fashion-mnist): "
                    f"{str(exc).splitlines()[0]}")


@pytest.mark.data
@pytest.mark.slow
def test_relu_he_mlp_reaches_88_percent_on_fashion_mnist():
    data = fashion_mnist_or_skip(standardize=True)
    model = MLP([784, 256, 256, 10], activation="relu", init="he_normal", seed=0)
    history = fit(model, data.x_train, data.y_train, epochs=10, batch_size=64, optimizer="adam", lr=5e-4,
                  validation=(data.x_test, data.y_test), progress=False)
    assert history.epochs[-1]["test_acc"] >= 0.88
