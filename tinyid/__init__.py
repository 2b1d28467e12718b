"""tinyid: deep networks from scratch, and the initialization theory that makes them train."""
from tinyid.backend import BackendUnavailableError, get_backend, to_numpy, use

__version__ = "0.1.0"

__all__ = ["BackendUnavailableError", "get_backend", "to_numpy", "use", "__version__"]
