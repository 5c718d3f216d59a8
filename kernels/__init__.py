"""Numerics: the forward and adjoint passes of the spiking network, one module per backend.

Every backend implements `forward(params, batch, ...) -> ForwardRecord` and
`backward(params, batch, record, source, ...) -> (Gradients, Probe | None)` on the grid scheme
of docs/engine.md."""
from .grid import StepCoefficients, check_params, make_batch
from .types import ForwardRecord, Gradients, LossSource, Params, Probe, SpikeBatch

BACKENDS = ("numba", "genn")


def get_engine(name="numba", **options):
    """The engine of a backend by name. "genn" needs pygenn (built from GeNN's source): without it,
    an ImportError says how to get it."""
    if name == "numba":
        from .numba_backend import NumbaEngine

        return NumbaEngine(**options)
    if name == "genn":
        from .genn_backend import GeNNEngine

        return GeNNEngine(**options)
    raise ValueError(f"unknown engine backend {name!r}; available: {', '.join(BACKENDS)}")


def backend_available(name):
    """(True, "") if the backend can run here, else (False, why)."""
    if name == "genn":
        from .genn_backend import pygenn_status

        ok, why = pygenn_status()
        return ok, "" if ok else why
    return (True, "") if name in BACKENDS else (False, f"unknown backend {name!r}")


__all__ = ["BACKENDS", "backend_available", "ForwardRecord", "Gradients", "LossSource", "Params", "Probe", "SpikeBatch",
           "StepCoefficients", "check_params", "get_engine", "make_batch"]
