"""tinyid: deep networks from scratch, and the initialization theory that makes them train.

The pieces, each a module a learner can read in one sitting:

- :mod:`tinyid.backend` — NumPy or CuPy arrays (``tinyid.use("cupy")``, ``model.to("cupy")``);
- :mod:`tinyid.activations` — phi and phi' for the classic activations;
- :mod:`tinyid.init` — Glorot's standard heuristic, Xavier, He, LeCun, orthogonal, identity;
- :mod:`tinyid.layers` — :class:`Dense` and :class:`MLP` with hand-written backprop;
- :mod:`tinyid.losses`, :mod:`tinyid.optim`, :mod:`tinyid.train` — loss, optimizers, the fit loop;
- :mod:`tinyid.data` — Shapeset-3x2 (generated), (Fashion-)MNIST and CIFAR-10 readers;
- :mod:`tinyid.theory` — the variance-propagation and mean-field predictions, in closed form;
- :mod:`tinyid.probes` — the same quantities measured per layer on real networks while they train;
- :mod:`tinyid.jacobian` — the input-output Jacobian by hand: products, singular values, randomized spectra;
- :mod:`tinyid.similarity` — CCA, SVCCA, PWCCA and CKA to compare layers, networks and training times;
- :mod:`tinyid.class_channel` — the identity-initialized class-channel MLP (layer-wise interpretation).
"""
from tinyid import activations, class_channel, init, jacobian, losses, optim, probes, similarity, theory
from tinyid.class_channel import ClassChannelMLP
from tinyid.backend import BackendUnavailableError, get_backend, to_numpy, use
from tinyid.checkpoint import CheckpointError
from tinyid.layers import MLP, Dense
from tinyid.optim import SGD, Adam
from tinyid.probes import Probe
from tinyid.train import Callback, History, NonFiniteLossError, Trainer, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "activations", "class_channel", "init", "jacobian", "losses", "optim", "probes", "similarity", "theory",
    "ClassChannelMLP",
    "BackendUnavailableError", "get_backend", "to_numpy", "use",
    "CheckpointError", "MLP", "Dense", "SGD", "Adam", "Probe",
    "Callback", "History", "NonFiniteLossError", "Trainer", "evaluate", "fit",
    "__version__",
]
