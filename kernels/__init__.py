"""Numerics: the forward and adjoint passes of the spiking network, one module per backend.

Every backend implements `forward(params, batch, ...) -> ForwardRecord` and
`backward(params, batch, record, source, ...) -> (Gradients, Probe | None)` on the grid scheme
of docs/engine.md."""
from .grid import StepCoefficients, check_params, make_batch
from .types import ForwardRecord, Gradients, LossSource, Params, Probe, SpikeBatch

BACKENDS = ("numba",)


def get_engine(name="numba", **options):
    """The engine of a backend by name."""
    if name == "numba":
        from .numba_backend import NumbaEngine

        return NumbaEngine(**options)
    raise ValueError(f"unknown engine backend {name!r}; available: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "ForwardRecord", "Gradients", "LossSource", "Params", "Probe", "SpikeBatch",
           "StepCoefficients", "check_params", "get_engine", "make_batch"]
