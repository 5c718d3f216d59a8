"""The GeNN backend: the scheme of docs/engine.md as GeNN models (GPU where CUDA is present).

Optional: `pygenn` is built from GeNN's own source (README, "Running on a GPU with GeNN"); nothing
here is needed by the default install. The models are written here, not taken from mlGeNN's
EventProp compiler, because ours places each spike inside its step, spreads the loss source over
the step and takes the adjoint back to the crossing (docs/choices.md): mlGeNN's equations differ
at O(dt), and the point of this backend is to give the same spikes and gradients as the numba one.

How the scheme maps onto GeNN's timestep (synapse update, then neuron update):
- Forward, GeNN timestep g = 0 … T: the neuron update of g does our step n = g − 1; input events
  of step g are emitted by the input population at g and arrive at g + 1. A hidden spike carries
  its lag Δ; one synapse group per projection adds w to I, a twin group adds w·Δ to the target's
  `LagIn` (I += w − w·Δ/τ_s, V += w·Δ/τ_m: step 5 of the scheme). Lags and slopes of hidden spikes,
  and the readout's step means, go to dense per-step arrays (extra global parameters).
- Backward, timestep h = 0 … T + 1: after the neuron update of h the adjoint is at t_m, m = T − h.
  Neurons that spiked at stored step m (and inputs with events at step m) raise `BackSpike`; in the
  synapse update of h + 1 their outgoing synapses read the targets' λ (before this step's jumps,
  as the scheme wants), accumulate Σλ_I for the weight gradients and send Σ w(λ_V − λ_I) back
  (`addToPre`); the neuron update of h + 1 applies the jump, steps λ back and adds the sources.

Supported: every loss (sources on the readout's step means, on its sampled voltage, on hidden
spike times: the max loss's kink term, and on a spiking readout's first spike: first_spike),
recurrent or not, heterogeneous and trainable τ, the spike-count regulariser and probes: all that
the numba backend does. On GeNN's CPU backend the model batch is 1, so samples run one at a time.
"""
import os
import tempfile

import numpy as np

from .grid import KICK_MIN_SLOPE, THRESHOLD, check_batch, check_params, step_coefficients
from .grid import dtype_of as _dtype_of
from .types import ForwardRecord, Gradients, LossSource, Params, Probe, SpikeBatch


def pygenn_status():
    """(True, version) if pygenn can be imported, else (False, why): for messages and skips."""
    try:
        import pygenn
    except Exception as exc:  # ImportError, or a broken build
        return False, (f"pygenn cannot be imported ({type(exc).__name__}: {exc}); it is not on PyPI: install "
                       "GeNN from its own source as GeNN's README describes (README, 'Running on a GPU with GeNN')")
    return True, getattr(pygenn, "__version__", "unknown version")


def default_backend():
    """GeNN's CUDA backend where CUDA is present, else its single-threaded CPU backend."""
    import pygenn

    names = getattr(pygenn.genn_model, "backend_modules", {})
    return "cuda" if "cuda" in names else "single_threaded_cpu"


# ---- model code (GeNN's C-like code strings) -----------------------------------------------------
_CROSSING = """
// the crossing time u within the step: root of the exact voltage (regula falsi, Illinois)
scalar u = dt;
if (V >= 1.0) {
    u = 0.0;
}
else {
    scalar lo = 0.0, hi = dt, flo = V - 1.0, fhi = v - 1.0;
    int side = 0;
    for (int it = 0; it < 60; it++) {
        u = (lo * fhi - hi * flo) / (fhi - flo);
        const scalar y = u * (ITS - ITM);
        const scalar phi = (y != 0.0) ? expm1(y) / y : 1.0;
        const scalar f = exp(-u * ITM) * V + exp(-u * ITS) * (u * ITM) * phi * I - 1.0;
        if (fabs(f) <= Tol || hi - lo <= Tol * dt) {
            break;
        }
        if (f < 0.0) {
            lo = u; flo = f;
            if (side == -1) { fhi *= 0.5; }
            side = -1;
        }
        else {
            hi = u; fhi = f;
            if (side == 1) { flo *= 0.5; }
            side = 1;
        }
    }
}
"""

_HIDDEN_SIM = """
const int g = (int)round(t / dt);
if (Phase == 0) {
    Fired = 0;
    BackSpike = 0;
    if (g >= 1) {
        I += Isyn - LagIn * ITS;
        V += LagIn * ITM;
        if (RecordState) {
            StateV[(batch * NSteps + g - 1) * num_neurons + id] = V;
            StateI[(batch * NSteps + g - 1) * num_neurons + id] = I;
        }
        scalar v = A * V + C * I;
        const scalar inext = B * I;
        scalar rec = -1.0;
        scalar slope = 0.0;
        if (v >= 1.0) {
""" + _CROSSING + """
            const scalar icross = I * exp(-u * ITS);
            Lag = dt - u;
            rec = Lag;
            slope = fmax(icross - 1.0, V >= 1.0 ? KickMinSlope : MinSlope);  // as the numba kernel
            // reset at the crossing, then integrate exactly for the rest of the step (as the numba kernel)
            const scalar yl = Lag * (ITS - ITM);
            const scalar phil = (yl != 0.0) ? expm1(yl) / yl : 1.0;
            v = exp(-Lag * ITS) * (Lag * ITM) * phil * icross;
            Fired = 1;
        }
        const int at = (batch * (NSteps + 1) + g) * num_neurons + id;
        LagRec[at] = rec;
        SlopeRec[at] = slope;
        V = v;
        I = inext;
    }
}
else {
    const int m = NSteps - g;  // after this update, lambda is at t_m
    if (g >= 1 && m >= 0) {
        if (RecordState) {  // Isyn = sum of w Lag over this step's presynaptic hidden spikes (the main
            // synapse's event code): the PSPs' first lag of decay depends on our tau (as the numba kernel)
            GTauM += LV * Isyn / TauM;
            GTauS -= LI * Isyn / TauS;
        }
        if (BackSpike) {  // our spike stored at step m + 1: its jump, carried to t_{m+1}
            const int at = (batch * (NSteps + 1) + m + 1) * num_neurons + id;
            const scalar dspike = HasSpikeDl ? DlDspike[at] : 0.0;
            const scalar jump = (LV * (1.0 - Lag / TauM) + RevISyn + dspike) / Slope - RegJump;
            if (Probe) {
                TransRec[at] = RevISyn;
            }
            if (RecordState) {  // reset after the crossing: dV/dt and lambda_V over the lag (as the numba kernel)
                GTauM += (Lag / TauM) * (LV * (1.0 - Lag / TauM) - jump * Slope);
            }
            LV += jump * (1.0 + Lag / TauM);
            LI -= jump * (Lag / TauS);
        }
        if (Probe) {
            ProbeLV[(batch * NSteps + m) * num_neurons + id] = LV;
            ProbeLI[(batch * NSteps + m) * num_neurons + id] = LI;
        }
        if (RecordState) {  // trainable tau: the exact derivative of the step map
            const scalar v0 = StateV[(batch * NSteps + m) * num_neurons + id];
            const scalar i0 = StateI[(batch * NSteps + m) * num_neurons + id];
            const scalar muv = -TauM * LV;
            GTauM += muv * (DAM * v0 + DCM * i0);
            GTauS += (muv * DCS - TauS * LI * DBS) * i0;
        }
        LI = B * LI + D * LV;
        LV = A * LV;
    }
    BackSpike = 0;
    if (m >= 1) {
        const int at = (batch * (NSteps + 1) + m) * num_neurons + id;
        if (LagRec[at] >= 0.0) {
            BackSpike = 1;
            Lag = LagRec[at];
            Slope = SlopeRec[at];
        }
    }
}
"""

_READOUT_SIM = """
const int g = (int)round(t / dt);
if (Phase == 0) {
    if (g >= 1) {
        const int n = g - 1;
        I += Isyn - LagIn * ITS;
        V += LagIn * ITM;
        const int at = (batch * NSteps + n) * num_neurons + id;
        MeanV[at] = MV * V + MI * I;
        scalar v = A * V + C * I;
        const scalar inext = B * I;
        if (RecordTrace) {
            TraceV[at] = v;
            TraceI[at] = inext;
        }
        if (Spiking && v >= 1.0) {  // a spiking readout (first_spike): its first spike is kept
            if (FirstStep < 0) {
""" + _CROSSING + """
                FirstStep = g;
                FirstSlope = fmax(I * exp(-u * ITS) - 1.0, MinSlope);
                FirstLag = dt - u;
            }
            v = 0.0;
        }
        I = inext;
        V = v;
    }
}
else {
    const int m = NSteps - g;
    if (g >= 1 && m >= 0) {
        const int at = (batch * NSteps + m) * num_neurons + id;
        LV -= DlDtrace[at] / TauM;  // a source on V at t_{m+1} (the max loss)
        LI -= DlDtraceI[at] / TauS;  // and on I there
        if (FirstStep == m + 1) {  // the first spike's time (first_spike)
            const scalar jump = DlDfirst / FirstSlope;
            LV += jump * (1.0 + FirstLag / TauM);
            LI -= jump * (FirstLag / TauS);
        }
        if (Probe) {
            ProbeLV[at] = LV;
            ProbeLI[at] = LI;
        }
        LI = B * LI + D * LV;
        LV = A * LV;
        const scalar ell = DlDmean[at];
        LV -= MV * ell / TauM;
        LI -= MI * ell / TauS;
    }
    Src = (m >= 1) ? DlDmean[(batch * NSteps + m - 1) * num_neurons + id] : 0.0;
}
"""

_INPUT_SIM = """
const int g = (int)round(t / dt);
Mult = 0.0;
BackSpike = 0;
if (Phase == 0) {
    while (Cursor < End && EvStep[Cursor] == g) {
        Mult += 1.0;
        Cursor++;
    }
}
else {
    const int m = NSteps - g;
    while (Cursor > Start && EvStep[Cursor - 1] == m) {
        Mult += 1.0;
        Cursor--;
    }
    if (Mult > 0.0) {
        BackSpike = 1;
    }
}
"""

# the gradient of w_jm is -tau_syn,m * (sum of lambda_I,m at j's spikes, taken back to each crossing)
_MAIN_SYNAPSE_EVENT = """
const scalar diff = LV_post - LI_post;
const scalar dsyn = diff / TauS_post;
const scalar corr = LV_post / TauM_post + dsyn + Src_post / (dt * TauM_post);
Gradient += LI_post + Lag_pre * dsyn;
addToPre(g * (diff - Lag_pre * corr));
addToPost(g * Lag_pre);  // for the target's tau gradient (hidden targets; a readout ignores it)
"""


def _models(pygenn):
    from pygenn import VarAccess, VarAccessMode, create_neuron_model, create_weight_update_model

    ro = VarAccess.READ_ONLY

    def refs(*names):  # synapses only read neuron variables
        return [(n, "uint8_t" if n.startswith("BackSpike") else "scalar", VarAccessMode.READ_ONLY) for n in names]

    per_neuron = [(n, "scalar", ro) for n in ("A", "B", "C", "D", "ITM", "ITS", "TauM", "TauS")]
    hidden = create_neuron_model(
        "eventprop_lab_hidden",
        params=[("NSteps", "int"), "MinSlope", "KickMinSlope", "Tol", ("Phase", "int"), ("Probe", "int"),
                ("HasSpikeDl", "int"), ("RecordState", "int")],
        vars=[("V", "scalar"), ("I", "scalar"), ("LV", "scalar"), ("LI", "scalar"), ("Lag", "scalar"),
              ("Slope", "scalar"), ("Fired", "uint8_t"), ("BackSpike", "uint8_t"), ("Src", "scalar"),
              ("RegJump", "scalar", VarAccess.READ_ONLY_DUPLICATE), ("GTauM", "scalar"), ("GTauS", "scalar"),
              *per_neuron, *[(n, "scalar", ro) for n in ("DAM", "DCM", "DCS", "DBS")]],
        extra_global_params=[("LagRec", "scalar*"), ("SlopeRec", "scalar*"), ("TransRec", "scalar*"),
                             ("ProbeLV", "scalar*"), ("ProbeLI", "scalar*"), ("DlDspike", "scalar*"),
                             ("StateV", "scalar*"), ("StateI", "scalar*")],
        additional_input_vars=[("LagIn", "scalar", 0.0), ("RevISyn", "scalar", 0.0)],
        sim_code=_HIDDEN_SIM, threshold_condition_code="Fired")
    readout = create_neuron_model(
        "eventprop_lab_readout",
        params=[("NSteps", "int"), "MinSlope", "Tol", ("Phase", "int"), ("Probe", "int"), ("RecordTrace", "int"),
                ("Spiking", "int")],
        vars=[("V", "scalar"), ("I", "scalar"), ("LV", "scalar"), ("LI", "scalar"), ("Src", "scalar"),
              ("FirstStep", "int"), ("FirstSlope", "scalar"), ("FirstLag", "scalar"), ("DlDfirst", "scalar"),
              *per_neuron, ("MV", "scalar", ro), ("MI", "scalar", ro)],
        extra_global_params=[("MeanV", "scalar*"), ("TraceV", "scalar*"), ("TraceI", "scalar*"),
                             ("DlDmean", "scalar*"), ("DlDtrace", "scalar*"), ("DlDtraceI", "scalar*"), ("ProbeLV", "scalar*"),
                             ("ProbeLI", "scalar*")],
        additional_input_vars=[("LagIn", "scalar", 0.0)],
        sim_code=_READOUT_SIM)
    inputs = create_neuron_model(
        "eventprop_lab_input",
        params=[("NSteps", "int"), ("Phase", "int")],
        vars=[("Start", "int", VarAccess.READ_ONLY_DUPLICATE), ("End", "int", VarAccess.READ_ONLY_DUPLICATE),
              ("Cursor", "int"), ("Mult", "scalar"), ("BackSpike", "uint8_t")],
        extra_global_params=[("EvStep", "int*")],
        sim_code=_INPUT_SIM, threshold_condition_code="Mult > 0.0 && Phase == 0")
    main = create_weight_update_model(
        "eventprop_lab_synapse",
        vars=[("g", "scalar", ro), ("Gradient", "scalar")],
        pre_neuron_var_refs=refs("BackSpike_pre", "Lag_pre"),
        post_neuron_var_refs=refs("LV_post", "LI_post", "TauM_post", "TauS_post", "Src_post"),
        pre_spike_syn_code="addToPost(g);",
        pre_event_threshold_condition_code="BackSpike_pre",
        pre_event_syn_code=_MAIN_SYNAPSE_EVENT)
    lag = create_weight_update_model(
        "eventprop_lab_lag_synapse",
        vars=[("g", "scalar", ro)],
        pre_neuron_var_refs=refs("Lag_pre"),
        pre_spike_syn_code="addToPost(g * Lag_pre);")
    input_syn = create_weight_update_model(
        "eventprop_lab_input_synapse",
        vars=[("g", "scalar", ro), ("Gradient", "scalar")],
        pre_neuron_var_refs=refs("BackSpike_pre", "Mult_pre"),
        post_neuron_var_refs=refs("LI_post"),
        pre_spike_syn_code="addToPost(g * Mult_pre);",
        pre_event_threshold_condition_code="BackSpike_pre",
        pre_event_syn_code="Gradient += Mult_pre * LI_post;")
    return hidden, readout, inputs, main, lag, input_syn


class _Model:
    """One built and loaded GeNN model for a network shape, trial length and dt."""

    def __init__(self, key, backend, batch, build_dir, min_slope, kick_min_slope, event_capacity):
        import pygenn
        from pygenn import GeNNModel, init_postsynaptic, init_weight_update

        n_in, N, K, recurrent, T, dt, dtype = key
        self.key, self.batch, self.event_capacity = key, batch, event_capacity
        self.n_in, self.N, self.K, self.recurrent, self.T, self.dt = n_in, N, K, recurrent, T, dt
        self.dtype = np.dtype(dtype)
        hidden_m, readout_m, input_m, main_m, lag_m, input_syn_m = _models(pygenn)
        precision = "double" if self.dtype == np.float64 else "float"
        name = f"eventprop_{n_in}_{N}_{K}_{int(recurrent)}_{T}_{precision}_{batch}".replace(".", "_")
        model = GeNNModel(precision, name, backend=backend)
        model.dt = dt
        model.batch_size = batch
        tol = 8 * np.finfo(self.dtype).eps * THRESHOLD
        zeros = lambda n: np.zeros(n)  # noqa: E731
        coeff = {k: 1.0 for k in ("A", "B", "C", "D", "ITM", "ITS", "TauM", "TauS")}
        self.inputs = model.add_neuron_population(
            "inputs", n_in, input_m, {"NSteps": T, "Phase": 0},
            {"Start": 0, "End": 0, "Cursor": 0, "Mult": 0.0, "BackSpike": 0})
        self.hidden = model.add_neuron_population(
            "hidden", N, hidden_m, {"NSteps": T, "MinSlope": min_slope, "KickMinSlope": kick_min_slope, "Tol": tol,
                                    "Phase": 0, "Probe": 0, "HasSpikeDl": 0, "RecordState": 0},
            {"V": 0.0, "I": 0.0, "LV": 0.0, "LI": 0.0, "Lag": 0.0, "Slope": 1.0, "Fired": 0, "BackSpike": 0,
             "Src": 0.0, "RegJump": 0.0, "GTauM": 0.0, "GTauS": 0.0, **coeff,
             "DAM": 0.0, "DCM": 0.0, "DCS": 0.0, "DBS": 0.0})
        self.readout = model.add_neuron_population(
            "readout", K, readout_m, {"NSteps": T, "MinSlope": min_slope, "Tol": tol, "Phase": 0, "Probe": 0,
                                      "RecordTrace": 1, "Spiking": 0},
            {"V": 0.0, "I": 0.0, "LV": 0.0, "LI": 0.0, "Src": 0.0, "FirstStep": -1, "FirstSlope": 1.0,
             "FirstLag": 0.0, "DlDfirst": 0.0, **coeff, "MV": 1.0, "MI": 0.0})
        for pop, names in ((self.inputs, ("Phase",)), (self.hidden, ("Phase", "Probe", "HasSpikeDl", "RecordState")),
                           (self.readout, ("Phase", "Probe", "RecordTrace", "Spiking"))):
            for p in names:
                pop.set_param_dynamic(p)
        self.inputs.extra_global_params["EvStep"].set_init_values(np.zeros(event_capacity, np.int32))
        for egp, size in (("LagRec", batch * (T + 1) * N), ("SlopeRec", batch * (T + 1) * N),
                          ("TransRec", batch * (T + 1) * N), ("ProbeLV", batch * T * N), ("ProbeLI", batch * T * N),
                          ("DlDspike", batch * (T + 1) * N), ("StateV", batch * T * N), ("StateI", batch * T * N)):
            self.hidden.extra_global_params[egp].set_init_values(np.full(size, -1.0) if egp == "LagRec" else zeros(size))
        for egp in ("MeanV", "TraceV", "TraceI", "DlDmean", "DlDtrace", "DlDtraceI", "ProbeLV", "ProbeLI"):
            self.readout.extra_global_params[egp].set_init_values(zeros(batch * T * K))
        post_refs = {"LV_post": "LV", "LI_post": "LI", "TauM_post": "TauM", "TauS_post": "TauS", "Src_post": "Src"}
        delta = init_postsynaptic("DeltaCurr")
        self.syn_in = model.add_synapse_population(
            "w_in", "DENSE", self.inputs, self.hidden,
            init_weight_update(input_syn_m, {}, {"g": 0.0, "Gradient": 0.0},
                               pre_var_refs={"BackSpike_pre": "BackSpike", "Mult_pre": "Mult"},
                               post_var_refs={"LI_post": "LI"}), delta)
        self.main, self.lag = {}, {}
        targets = [("out", self.readout)] + ([("rec", self.hidden)] if recurrent else [])
        for label, target in targets:
            sg = model.add_synapse_population(
                f"w_{label}", "DENSE", self.hidden, target,
                init_weight_update(main_m, {}, {"g": 0.0, "Gradient": 0.0},
                                   pre_var_refs={"BackSpike_pre": "BackSpike", "Lag_pre": "Lag"},
                                   post_var_refs=post_refs), init_postsynaptic("DeltaCurr"))
            sg.pre_target_var = "RevISyn"
            twin = model.add_synapse_population(
                f"w_{label}_lag", "DENSE", self.hidden, target,
                init_weight_update(lag_m, {}, {"g": 0.0}, pre_var_refs={"Lag_pre": "Lag"}),
                init_postsynaptic("DeltaCurr"))
            twin.post_target_var = "LagIn"
            self.main[label], self.lag[label] = sg, twin
        self.build_dir = build_dir
        model.build(path_to_model=build_dir)
        model.load()
        self.model = model

    # ---- pushing state -----------------------------------------------------------------------
    @staticmethod
    def _push(pop, name, values):
        var = pop.vars[name]
        var.view[...] = np.asarray(values).reshape(var.view.shape)
        var.push_to_device()

    def _push_egp(self, pop, name, values):
        egp = pop.extra_global_params[name]
        egp.view[:len(values)] = values
        egp.push_to_device()

    def set_params(self, p: Params):
        ch = step_coefficients(p.tau_mem, p.tau_syn, self.dt)
        co = step_coefficients(p.tau_mem_out, p.tau_syn_out, self.dt)
        for pop, c, tm, ts in ((self.hidden, ch, p.tau_mem, p.tau_syn), (self.readout, co, p.tau_mem_out, p.tau_syn_out)):
            for name, value in (("A", c.a), ("B", c.b), ("C", c.c), ("D", c.d), ("ITM", 1 / tm), ("ITS", 1 / ts),
                                ("TauM", tm), ("TauS", ts)):
                self._push(pop, name, np.asarray(value, self.dtype))
        for name, value in (("DAM", ch.da_m), ("DCM", ch.dc_m), ("DCS", ch.dc_s), ("DBS", ch.db_s)):
            self._push(self.hidden, name, np.asarray(value, self.dtype))
        self._push(self.readout, "MV", co.mv)
        self._push(self.readout, "MI", co.mi)
        self._push(self.syn_in, "g", p.W_in.ravel())
        weights = {"out": p.W_out, "rec": p.W_rec}
        for label in self.main:
            self._push(self.main[label], "g", weights[label].ravel())
            self._push(self.lag[label], "g", weights[label].ravel())

    def set_inputs(self, batch: SpikeBatch, samples):
        """Events of `samples` (indices into batch), one model batch slot each, in CSR by channel."""
        starts = np.zeros((self.batch, self.n_in), np.int32)
        ends = np.zeros((self.batch, self.n_in), np.int32)
        pieces, offset = [], 0
        for slot, s in enumerate(samples):
            lo, hi = batch.ptr[s], batch.ptr[s + 1]
            ch, st = batch.channel[lo:hi], batch.step[lo:hi]
            order = np.lexsort((st, ch))
            counts = np.bincount(ch, minlength=self.n_in)
            starts[slot] = offset + np.concatenate([[0], np.cumsum(counts)[:-1]])
            ends[slot] = starts[slot] + counts
            pieces.append(st[order])
            offset += hi - lo
        steps = np.concatenate(pieces) if pieces else np.zeros(0, np.int32)
        if len(steps) > self.event_capacity:  # GeNNEngine._model sizes the model for the batch: a bug if hit
            raise RuntimeError(f"{len(steps)} input events exceed the model's capacity of {self.event_capacity}")
        self._push_egp(self.inputs, "EvStep", steps.astype(np.int32))
        self._push(self.inputs, "Start", starts)
        self._push(self.inputs, "End", ends)
        self._cursor_start, self._cursor_end = starts, ends

    def _phase(self, phase, probe=False):
        for pop in (self.inputs, self.hidden, self.readout):
            pop.set_dynamic_param_value("Phase", phase)
        for pop in (self.hidden, self.readout):
            pop.set_dynamic_param_value("Probe", int(probe))
        self.model.timestep = 0

    def _zero(self, pop, names):
        for name in names:
            var = pop.vars[name]
            var.view[...] = 0
            var.push_to_device()

    def forward(self, record_trace, spiking, record_state):
        self._phase(0)
        self.hidden.set_dynamic_param_value("RecordState", int(record_state))
        self.readout.set_dynamic_param_value("RecordTrace", int(record_trace))
        self.readout.set_dynamic_param_value("Spiking", int(spiking))
        self._push(self.readout, "FirstStep", np.full((self.batch, self.K), -1, np.int32))
        self._push(self.inputs, "Cursor", self._cursor_start)
        self._zero(self.hidden, ("V", "I", "Fired", "BackSpike", "Lag"))
        self._zero(self.readout, ("V", "I"))
        for _ in range(self.T + 1):
            self.model.step_time()
        out = {}
        for pop, names in ((self.hidden, ("LagRec", "SlopeRec")), (self.readout, ("MeanV", "TraceV", "TraceI")),
                           *([(self.hidden, ("StateV", "StateI"))] if record_state else [])):
            for name in names:
                egp = pop.extra_global_params[name]
                egp.pull_from_device()
                out[name] = egp.view.copy()
        if spiking:
            for name in ("FirstStep", "FirstSlope", "FirstLag"):
                var = self.readout.vars[name]
                var.pull_from_device()
                out[name] = var.view.reshape(self.batch, self.K).copy()
        return out

    def backward(self, lag_rec, slope_rec, dl_dmean, dl_dtrace, dl_dtrace_i, dl_dspike, reg_jump, first, state,
                 probe):
        self._phase(1, probe)
        self.hidden.set_dynamic_param_value("RecordState", int(state is not None))
        if state is not None:
            self._push_egp(self.hidden, "StateV", state[0].ravel())
            self._push_egp(self.hidden, "StateI", state[1].ravel())
            self._zero(self.hidden, ("GTauM", "GTauS"))
        for name, value in zip(("FirstStep", "FirstSlope", "FirstLag", "DlDfirst"), first):
            self._push(self.readout, name, value)
        self._push_egp(self.hidden, "LagRec", lag_rec.ravel())
        self._push_egp(self.hidden, "SlopeRec", slope_rec.ravel())
        self._push_egp(self.readout, "DlDmean", dl_dmean.ravel())
        self._push_egp(self.readout, "DlDtrace", dl_dtrace.ravel())
        self._push_egp(self.readout, "DlDtraceI", dl_dtrace_i.ravel())
        self.hidden.set_dynamic_param_value("HasSpikeDl", int(dl_dspike is not None))
        if dl_dspike is not None:
            self._push_egp(self.hidden, "DlDspike", dl_dspike.ravel())
        self._push(self.hidden, "RegJump", reg_jump)
        self._push(self.inputs, "Cursor", self._cursor_end)
        self._zero(self.hidden, ("LV", "LI", "BackSpike", "Fired"))
        self._zero(self.readout, ("LV", "LI", "Src"))
        for sg in (self.syn_in, *self.main.values()):
            self._zero(sg, ("Gradient",))
        for _ in range(self.T + 2):
            self.model.step_time()
        grads = {}
        for label, sg in (("in", self.syn_in), *self.main.items()):
            var = sg.vars["Gradient"]
            var.pull_from_device()
            grads[label] = var.view.reshape(self.batch, -1).astype(np.float64)
        if state is not None:
            for name in ("GTauM", "GTauS"):
                var = self.hidden.vars[name]
                var.pull_from_device()
                grads[name] = var.view.reshape(self.batch, -1).astype(np.float64)
        probes = {}
        if probe:
            for pop, names in ((self.hidden, ("ProbeLV", "ProbeLI", "TransRec")), (self.readout, ("ProbeLV", "ProbeLI"))):
                for name in names:
                    egp = pop.extra_global_params[name]
                    egp.pull_from_device()
                    probes[(pop is self.hidden, name)] = egp.view.copy()
        return grads, probes


class GeNNEngine:
    """Forward and adjoint passes on GeNN, behind the interface of NumbaEngine."""

    name = "genn"
    supported_losses = None  # all: every kind of loss source is implemented

    def __init__(self, backend=None, batch_size=None, build_dir=None, min_slope=1e-3, kick_min_slope=KICK_MIN_SLOPE):
        ok, why = pygenn_status()
        if not ok:
            raise ImportError(why)
        self.backend = backend or default_backend()
        # GeNN's CPU backends simulate one batch slot at a time
        self.batch_size = int(batch_size or (32 if self.backend == "cuda" else 1))
        if self.backend != "cuda" and self.batch_size != 1:
            raise ValueError(f"GeNN's {self.backend} backend runs batch size 1 only; use batch_size=1 or CUDA")
        self.build_dir = build_dir or os.path.join(tempfile.gettempdir(), "eventprop_lab_genn")
        self.min_slope = float(min_slope)
        self.kick_min_slope = float(kick_min_slope)
        self._models = {}

    def _model(self, params, batch, n_events):
        key = (params.n_in, params.n_hidden, params.n_out, params.recurrent, batch.n_steps, float(batch.dt),
               _dtype_of(params).str)
        model = self._models.get(key)
        if model is None or model.event_capacity < n_events:
            capacity = int(2 ** np.ceil(np.log2(max(n_events, 1024) * 1.5)))
            os.makedirs(self.build_dir, exist_ok=True)
            if model is not None:
                model.model.unload()
            model = _Model(key, self.backend, self.batch_size, self.build_dir, self.min_slope, self.kick_min_slope,
                           capacity)
            self._models[key] = model
        return model

    def _chunks(self, B):
        return [list(range(s, min(s + self.batch_size, B))) for s in range(0, B, self.batch_size)]

    def _most_events(self, batch):
        per_sample = np.diff(batch.ptr)
        return max((int(per_sample[c].sum()) for c in self._chunks(batch.batch_size)), default=0)

    # ---- forward -------------------------------------------------------------------------
    def forward(self, params: Params, batch: SpikeBatch, *, spiking_readout=False, record_readout_samples=True,
                record_readout_current=False, record_state=False) -> ForwardRecord:
        check_params(params)
        check_batch(batch, params)
        dtype = _dtype_of(params)
        p = params.astype(dtype)
        B, T, N, K = batch.batch_size, batch.n_steps, p.n_hidden, p.n_out
        model = self._model(p, batch, self._most_events(batch))
        model.set_params(p)
        lag = np.full((B, T + 1, N), -1.0)
        slope = np.zeros((B, T + 1, N))
        mean_v = np.zeros((B, T, K), dtype)
        trace_v = np.zeros((B, T, K), dtype)
        trace_i = np.zeros((B, T, K), dtype)
        first = [np.full((B, K), -1, np.int32), np.zeros((B, K), dtype), np.zeros((B, K), dtype)]
        state = [np.zeros((B, T, N), dtype), np.zeros((B, T, N), dtype)] if record_state else None
        for chunk in self._chunks(B):
            model.set_inputs(batch, chunk)
            out = model.forward(record_readout_samples or record_readout_current, spiking_readout, record_state)
            n = len(chunk)
            lag[chunk] = out["LagRec"].reshape(model.batch, T + 1, N)[:n]
            slope[chunk] = out["SlopeRec"].reshape(model.batch, T + 1, N)[:n]
            mean_v[chunk] = out["MeanV"].reshape(model.batch, T, K)[:n]
            trace_v[chunk] = out["TraceV"].reshape(model.batch, T, K)[:n]
            trace_i[chunk] = out["TraceI"].reshape(model.batch, T, K)[:n]
            if spiking_readout:
                for i, name in enumerate(("FirstStep", "FirstSlope", "FirstLag")):
                    first[i][chunk] = out[name][:n]
            if record_state:
                for i, name in enumerate(("StateV", "StateI")):
                    state[i][chunk] = out[name].reshape(model.batch, T, N)[:n]
        record = _record_from_dense(lag, slope, mean_v, trace_v if record_readout_samples else None,
                                    trace_i if record_readout_current else None, batch, dtype)
        if spiking_readout:
            record = record._replace(first_step=first[0], first_slope=first[1], first_lag=first[2])
        if record_state:
            record = record._replace(state_v=state[0], state_i=state[1])
        return record

    # ---- backward ------------------------------------------------------------------------
    def backward(self, params: Params, batch: SpikeBatch, record: ForwardRecord, source: LossSource, *,
                 reg_jump=None, train_tau=False, probe_samples=()):
        if train_tau and record.state_v is None:
            raise ValueError("train_tau needs a forward record made with record_state=True")
        dtype = _dtype_of(params)
        p = params.astype(dtype)
        B, T, N, K = batch.batch_size, batch.n_steps, p.n_hidden, p.n_out
        for name in ("dl_dmean", "dl_dtrace", "dl_dtrace_i"):
            x = getattr(source, name)
            if x is not None and x.shape != (B, T, K):
                raise ValueError(f"{name} must have shape {(B, T, K)}, got {x.shape}")
        cap = record.spike_step.shape[1]
        if source.dl_dspike is not None and source.dl_dspike.shape != (B, cap):
            raise ValueError(f"dl_dspike must have shape {(B, cap)}, got {source.dl_dspike.shape}")
        probe_samples = np.asarray(probe_samples, np.int64).reshape(-1)
        if np.any((probe_samples < 0) | (probe_samples >= B)):
            raise ValueError(f"probe samples {probe_samples.tolist()} outside the batch of {B}")
        model = self._model(p, batch, self._most_events(batch))
        model.set_params(p)
        lag, slope = _dense_from_record(record, N)
        dense_dspike = None if source.dl_dspike is None else _dense_from_record(record, N, source.dl_dspike)
        zeros = np.zeros((B, T, K))
        dl_dmean = zeros if source.dl_dmean is None else np.asarray(source.dl_dmean, np.float64)
        dl_dtrace = zeros if source.dl_dtrace is None else np.asarray(source.dl_dtrace, np.float64)
        dl_dtrace_i = zeros if source.dl_dtrace_i is None else np.asarray(source.dl_dtrace_i, np.float64)
        jump = np.zeros(N) if reg_jump is None else np.asarray(reg_jump, np.float64)
        has_first = record.first_step is not None and source.dl_dfirst is not None
        first = ((record.first_step, record.first_slope, record.first_lag, source.dl_dfirst) if has_first else
                 (np.full((B, K), -1, np.int32), np.ones((B, K)), np.zeros((B, K)), np.zeros((B, K))))
        g_in = np.zeros(p.n_in * N)
        g_out = np.zeros(N * K)
        g_rec = np.zeros(N * N)
        g_tau_m, g_tau_s = np.zeros(N), np.zeros(N)
        P = len(probe_samples)
        probe_lv, probe_li = np.zeros((P, T, N), dtype), np.zeros((P, T, N), dtype)
        probe_lvo, probe_lio = np.zeros((P, T, K), dtype), np.zeros((P, T, K), dtype)
        probe_tr = np.full((P, cap), np.nan, dtype)
        slot_of = {int(s): i for i, s in enumerate(probe_samples)}
        for chunk in self._chunks(B):
            n = len(chunk)
            model.set_inputs(batch, chunk)
            pad = lambda x: np.concatenate([x, np.zeros((model.batch - n,) + x.shape[1:], x.dtype)])  # noqa: E731
            lag_c = np.concatenate([lag[chunk], np.full((model.batch - n, T + 1, N), -1.0)])
            probed = [s for s in chunk if s in slot_of]
            grads, probes = model.backward(
                lag_c, pad(slope[chunk]), pad(dl_dmean[chunk]), pad(dl_dtrace[chunk]), pad(dl_dtrace_i[chunk]),
                None if dense_dspike is None else pad(dense_dspike[chunk]), np.broadcast_to(jump, (model.batch, N)),
                [np.concatenate([np.asarray(x)[chunk], np.full((model.batch - n, K), -1 if i == 0 else 0)])
                 for i, x in enumerate(first)],
                [pad(np.asarray(record.state_v[chunk], np.float64)), pad(np.asarray(record.state_i[chunk], np.float64))]
                if train_tau else None, probe=bool(probed))
            g_in += grads["in"][:n].sum(0)
            g_out += grads["out"][:n].sum(0)
            if p.recurrent:
                g_rec += grads["rec"][:n].sum(0)
            if train_tau:
                g_tau_m += grads["GTauM"][:n].sum(0)
                g_tau_s += grads["GTauS"][:n].sum(0)
            for s in probed:
                i, b = slot_of[s], chunk.index(s)
                probe_lv[i] = probes[(True, "ProbeLV")].reshape(model.batch, T, N)[b]
                probe_li[i] = probes[(True, "ProbeLI")].reshape(model.batch, T, N)[b]
                probe_lvo[i] = probes[(False, "ProbeLV")].reshape(model.batch, T, K)[b]
                probe_lio[i] = probes[(False, "ProbeLI")].reshape(model.batch, T, K)[b]
                trans = probes[(True, "TransRec")].reshape(model.batch, T + 1, N)[b]
                k = int(record.n_spikes[s])
                probe_tr[i, :k] = trans[record.spike_step[s, :k], record.spike_id[s, :k]]
        grads = Gradients(
            W_in=(-g_in.reshape(p.n_in, N) * p.tau_syn).astype(dtype),
            W_rec=(-g_rec.reshape(N, N) * p.tau_syn).astype(dtype) if p.recurrent else None,
            W_out=(-g_out.reshape(N, K) * p.tau_syn_out).astype(dtype),
            tau_mem=g_tau_m.astype(dtype) if train_tau else None, tau_syn=g_tau_s.astype(dtype) if train_tau else None)
        probe = Probe(probe_samples, probe_lv, probe_li, probe_lvo, probe_lio, probe_tr) if P else None
        return grads, probe


def _record_from_dense(lag, slope, mean_v, trace_v, trace_i, batch, dtype):
    """The numba backend's spike store (by step, then neuron) from the dense per-step arrays."""
    B, T1, N = lag.shape
    n_spikes = np.zeros(B, np.int64)
    per = []
    for s in range(B):
        steps, ids = np.nonzero(lag[s] >= 0)
        per.append((steps, ids))
        n_spikes[s] = len(steps)
    cap = max(int(n_spikes.max()) if B else 0, 1)
    spike_step = np.zeros((B, cap), np.int32)
    spike_id = np.zeros((B, cap), np.int32)
    spike_slope = np.zeros((B, cap), dtype)
    spike_lag = np.zeros((B, cap), dtype)
    counts = np.zeros((B, N), np.int32)
    for s, (steps, ids) in enumerate(per):
        k = len(steps)
        spike_step[s, :k], spike_id[s, :k] = steps, ids
        spike_slope[s, :k], spike_lag[s, :k] = slope[s, steps, ids], lag[s, steps, ids]
        counts[s] = np.bincount(ids, minlength=N)
    return ForwardRecord(spike_step, spike_id, spike_slope, spike_lag, n_spikes, counts, mean_v, trace_v,
                         trace_i, None, None, None, None, None, batch.dt, batch.n_steps)


def _dense_from_record(record, N, per_spike=None):
    """(lag, slope) of each hidden spike on a (sample, stored step, neuron) grid, -1 lag where none;
    with per_spike (B, cap) given, that value on the grid instead (0 where no spike)."""
    B = record.spike_step.shape[0]
    T = record.n_steps
    if per_spike is not None:
        out = np.zeros((B, T + 1, N))
        for s in range(B):
            k = int(record.n_spikes[s])
            out[s, record.spike_step[s, :k], record.spike_id[s, :k]] = per_spike[s, :k]
        return out
    lag = np.full((B, T + 1, N), -1.0)
    slope = np.zeros((B, T + 1, N))
    for s in range(B):
        k = int(record.n_spikes[s])
        steps, ids = record.spike_step[s, :k], record.spike_id[s, :k]
        if k and np.any(np.bincount(steps * N + ids) > 1):
            raise ValueError(f"sample {s}: a neuron spikes twice in one step, which the scheme does not allow")
        lag[s, steps, ids] = record.spike_lag[s, :k]
        slope[s, steps, ids] = record.spike_slope[s, :k]
    return lag, slope
