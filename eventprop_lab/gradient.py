"""One exact-gradient evaluation: forward pass, loss, adjoint pass."""
from typing import NamedTuple, Optional

from kernels import ForwardRecord, Gradients, Params, Probe, SpikeBatch

from .losses import Loss, LossResult


class StepResult(NamedTuple):
    loss: LossResult
    gradients: Gradients
    record: ForwardRecord
    probe: Optional[Probe]


def loss_and_gradients(engine, params: Params, batch: SpikeBatch, labels, loss: Loss,
                       regulariser=None, train_tau=False, probe_samples=()) -> StepResult:
    record = engine.forward(params, batch, record_state=train_tau, **loss.record_options())
    result = loss.evaluate(record, labels, params)
    reg_jump = regulariser.jump(record.counts) if regulariser is not None else None
    grads, probe = engine.backward(params, batch, record, result.source, reg_jump=reg_jump,
                                   train_tau=train_tau, probe_samples=probe_samples)
    return StepResult(result, grads, record, probe)
