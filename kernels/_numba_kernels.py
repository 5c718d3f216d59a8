"""Numba kernels: forward pass and adjoint pass on the dt grid (docs/engine.md).

Plain functions on arrays. Each works on chunks of the batch in parallel; a chunk's samples run
one after another with that chunk's own state and gradient buffers, so memory does not grow
with batch size beyond the recorded spikes and readout traces.
"""
import math

import numba
import numpy as np
from numba import njit, prange

# No 'nnan'/'ninf': NaN must propagate so the caller can detect a diverged network.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def n_chunks_for(batch_size):
    return max(1, min(batch_size, numba.get_num_threads()))


@njit(fastmath=_FASTMATH, cache=True)
def voltage_after(u, v0, i0, tau_mem, tau_syn):
    """V after a time u without events: a(u) v0 + c(u) i0 (c in the stable form of grid.py)."""
    y = u * (1.0 / tau_syn - 1.0 / tau_mem)
    phi = math.expm1(y) / y if y != 0.0 else 1.0
    return math.exp(-u / tau_mem) * v0 + math.exp(-u / tau_syn) * (u / tau_mem) * phi * i0


@njit(fastmath=_FASTMATH, cache=True)
def crossing_time(v0, i0, v_end, tau_mem, tau_syn, dt, threshold, tol):
    """When, within a step of length dt, V crosses threshold upward: the root of the exact
    voltage between v0 < threshold and v_end >= threshold (unique: V has at most one extremum
    per step), by the Illinois variant of regula falsi."""
    if v0 >= threshold:
        return 0.0
    lo, hi = 0.0, dt
    f_lo, f_hi = v0 - threshold, v_end - threshold
    side = 0
    u = dt
    for _ in range(60):
        u = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        f = voltage_after(u, v0, i0, tau_mem, tau_syn) - threshold
        if abs(f) <= tol or hi - lo <= tol * dt:
            break
        if f < 0.0:
            lo, f_lo = u, f
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = u, f
            if side == 1:
                f_lo *= 0.5
            side = 1
    return u


@njit(fastmath=_FASTMATH, cache=True)
def rise(x, delta):
    """(1 - e^(-x delta)) / delta with delta = 1/tau_s - 1/tau_m; x where delta = 0."""
    y = -x * delta
    return x * (math.expm1(y) / y if y != 0.0 else 1.0)


# In the ordered scheme a neuron's voltage in a step is V(t) = e^(-t/tau_m) (P + Q rise(t)), with
# P = V_n, Q = I_n / tau_m at t = 0 and, for each PSP of weight w starting at u, Q += g and
# P -= g rise(u), g = w e^(u/tau_s) / tau_m. Two numbers per neuron hold all of the step's PSPs
# exactly, and the form stays finite where tau_s = tau_m. I(t) = tau_m Q e^(-t/tau_s).

@njit(fastmath=_FASTMATH, cache=True)
def voltage_pq(t, P, Q, itm, delta):
    return math.exp(-t * itm) * (P + Q * rise(t, delta))


@njit(fastmath=_FASTMATH, cache=True)
def crossing_bound(u, v, i, itm, threshold, dt):
    """A lower bound on the first crossing after u of a neuron in state (v, i) at u, and whether it
    is the crossing itself. While V < threshold, tau_m dV/dt = I - V <= max(I(u), 0) - V, so V
    rises no faster than towards max(I(u), 0) at rate 1/tau_m, and not at all past it. Over
    threshold at u: u, but not exact, as the spike goes to the step's end if V is back under
    threshold there (crossing_pq decides)."""
    if v >= threshold:
        return u, False
    ip = max(i, 0.0)
    if ip <= threshold:
        return dt, True  # the exact voltage stays below: placed at the step's end
    bound = u + (threshold - v) / ((ip - v) * itm)
    if bound >= dt:
        return dt, True
    return bound, False


@njit(fastmath=_FASTMATH, cache=True)
def crossing_pq(P, Q, lo, hi, itm, delta, threshold, tol):
    """The first upward crossing in [lo, hi] of V(t) = e^(-t/tau_m) (P + Q rise(t)), given no
    crossing before lo, or hi if V(hi) < threshold (as the plain scheme places a graze, also where
    V is over threshold at lo and falls back before hi); lo if V(lo) >= threshold; else the root
    (unique: V has at most one extremum in a step), by the Illinois variant of regula falsi."""
    f_hi = voltage_pq(hi, P, Q, itm, delta) - threshold
    if f_hi < 0.0:
        return hi
    f_lo = voltage_pq(lo, P, Q, itm, delta) - threshold
    if f_lo >= 0.0:
        return lo
    span = hi - lo
    side = 0
    u = hi
    for _ in range(60):
        u = (lo * f_hi - hi * f_lo) / (f_hi - f_lo)
        f = voltage_pq(u, P, Q, itm, delta) - threshold
        if abs(f) <= tol or hi - lo <= tol * span:
            break
        if f < 0.0:
            lo, f_lo = u, f
            if side == -1:
                f_hi *= 0.5
            side = -1
        else:
            hi, f_hi = u, f
            if side == 1:
                f_lo *= 0.5
            side = 1
    return u


@njit(parallel=True, fastmath=_FASTMATH, cache=True)
def forward_kernel(
    n_chunks, in_ptr, in_step, in_ch, n_steps,
    W_in, W_rec, W_out,
    a_h, c_h, b_h, a_o, c_o, b_o, mv_o, mi_o, itm_h, its_h, itm_o, its_o, dt,
    threshold, min_slope, kick_min_slope, tol, recurrent, spiking_readout, ordered,
    spike_step, spike_id, spike_slope, spike_lag, n_spikes, counts,
    mean_v, trace_v, trace_i, first_step, first_slope, first_lag, state_v, state_i,
):
    B = in_ptr.shape[0] - 1
    N = W_in.shape[1]
    K = W_out.shape[1]
    cap = spike_step.shape[1]
    record_samples = trace_v.shape[0] > 0
    record_i = trace_i.shape[0] > 0
    record_state = state_v.shape[0] > 0
    homogeneous = True  # one tau_m and one tau_s in the hidden layer
    for j in range(N):
        if itm_h[j] != itm_h[0] or its_h[j] != its_h[0]:
            homogeneous = False
    for chunk in prange(n_chunks):
        em_u = es_u = rise_u = 0.0
        V = np.zeros(N, W_in.dtype)
        I = np.zeros(N, W_in.dtype)
        Vo = np.zeros(K, W_in.dtype)
        Io = np.zeros(K, W_in.dtype)
        fired = np.empty(N, np.int32)
        lag = np.empty(N, W_in.dtype)
        fired_u = np.empty(N, W_in.dtype)
        V0 = np.zeros(N, W_in.dtype)
        I0 = np.zeros(N, W_in.dtype)
        done = np.zeros(N, np.bool_)  # fired in this step
        cand_id = np.empty(N, np.int32)
        cand_u = np.empty(N, W_in.dtype)
        cand_pos = np.full(N, -1, np.int64)
        # cand_u: a lower bound on the candidate's crossing, the crossing itself where cand_exact
        cand_exact = np.zeros(N, np.bool_)
        # each neuron's V in the step as (P, Q), holding the step's first nq PSPs
        P = np.empty(N, np.float64)
        Q = np.empty(N, np.float64)
        nq = np.empty(N, np.int64)
        # per spike of the step, e^(u/tau_s) and rise(u), shared by all targets where the taus are
        fired_eus = np.empty(N, np.float64)
        fired_rise = np.empty(N, np.float64)
        for s in range(chunk, B, n_chunks):
            V[:] = 0.0
            I[:] = 0.0
            Vo[:] = 0.0
            Io[:] = 0.0
            e = in_ptr[s]
            e_end = in_ptr[s + 1]
            ns = 0
            if spiking_readout:
                for k in range(K):
                    first_step[s, k] = -1
            for j in range(N):
                counts[s, j] = 0
            for n in range(n_steps):
                # step 1: input events of step n arrive at t_n
                while e < e_end and in_step[e] == n:
                    row = W_in[in_ch[e]]
                    for j in range(N):
                        I[j] += row[j]
                    e += 1
                if record_state:
                    for j in range(N):
                        state_v[s, n, j] = V[j]
                        state_i[s, n, j] = I[j]
                # step 2: exact propagation to t_{n+1} (spec §1)
                n_fired = 0
                if not ordered:
                    for j in range(N):
                        v = a_h[j] * V[j] + c_h[j] * I[j]
                        i_next = b_h[j] * I[j]
                        if v >= threshold:
                            # step 4: spike at the crossing, stored at t_{n+1} with the lag;
                            # slope = tau_m dV/dt = I - threshold at the crossing
                            u = crossing_time(V[j], I[j], v, 1.0 / itm_h[j], 1.0 / its_h[j], dt,
                                              threshold, tol)
                            i_cross = I[j] * math.exp(-u * its_h[j])
                            fired[n_fired] = j
                            lag[n_fired] = dt - u
                            if ns < cap:
                                spike_step[s, ns] = n + 1
                                spike_id[s, ns] = j
                                # kicked over threshold by the previous step's spikes: see KICK_MIN_SLOPE
                                floor = kick_min_slope if V[j] >= threshold else min_slope
                                spike_slope[s, ns] = max(i_cross - threshold, floor)
                                spike_lag[s, ns] = lag[n_fired]
                            n_fired += 1
                            ns += 1
                            counts[s, j] += 1
                            # reset at the crossing, then integrate exactly for the rest of the step
                            v = voltage_after(lag[n_fired - 1], 0.0, i_cross, 1.0 / itm_h[j], 1.0 / its_h[j])
                        V[j] = v
                        I[j] = i_next
                else:
                    # the step's crossings in time order; each spike's PSP reaches the other
                    # hidden neurons at its crossing, so a spike can advance, delay, cancel or
                    # cause (kick) another one in the same step (docs/engine.md, "Order in a step").
                    # The next to fire is found from cheap lower bounds: the candidate with the
                    # least bound gets its exact crossing, until the least is exact.
                    n_cand = 0
                    for j in range(N):
                        V0[j] = V[j]
                        I0[j] = I[j]
                        nq[j] = -1
                        v = a_h[j] * V[j] + c_h[j] * I[j]
                        I[j] = b_h[j] * I[j]
                        V[j] = v
                        if v >= threshold:
                            P[j] = V0[j]
                            Q[j] = I0[j] * itm_h[j]
                            nq[j] = 0
                            cand_id[n_cand] = j
                            cand_u[n_cand], cand_exact[n_cand] = crossing_bound(0.0, V0[j], I0[j], itm_h[j],
                                                                                threshold, dt)
                            cand_pos[j] = n_cand
                            n_cand += 1
                    while n_cand > 0:
                        c = 0
                        for x in range(1, n_cand):
                            if cand_u[x] < cand_u[c]:
                                c = x
                        j = cand_id[c]
                        if not cand_exact[c]:
                            cand_u[c] = crossing_pq(P[j], Q[j], cand_u[c], dt, itm_h[j], its_h[j] - itm_h[j],
                                                    threshold, tol)
                            cand_exact[c] = True
                            continue
                        u = cand_u[c]
                        n_cand -= 1
                        cand_id[c] = cand_id[n_cand]
                        cand_u[c] = cand_u[n_cand]
                        cand_exact[c] = cand_exact[n_cand]
                        cand_pos[cand_id[c]] = c
                        cand_pos[j] = -1
                        i_cross = Q[j] * math.exp(-u * its_h[j]) / itm_h[j]
                        dl = dt - u
                        fired[n_fired] = j
                        fired_u[n_fired] = u
                        lag[n_fired] = dl
                        if homogeneous:
                            fired_eus[n_fired] = math.exp(u * its_h[0])
                            fired_rise[n_fired] = rise(u, its_h[0] - itm_h[0])
                        n_fired += 1
                        done[j] = True
                        if ns < cap:
                            spike_step[s, ns] = n + 1
                            spike_id[s, ns] = j
                            # started the step over threshold (kicked in the step before, beyond
                            # what the order in a step resolves), or placed at the step's end
                            floor = kick_min_slope if V0[j] >= threshold or u >= dt else min_slope
                            spike_slope[s, ns] = max(i_cross - threshold, floor)
                            spike_lag[s, ns] = dl
                        ns += 1
                        counts[s, j] += 1
                        V[j] = voltage_after(dl, 0.0, i_cross, 1.0 / itm_h[j], 1.0 / its_h[j])
                        if recurrent:
                            row = W_rec[j]
                            if homogeneous:
                                em_u = math.exp(-u * itm_h[0])
                                es_u = 1.0 / fired_eus[n_fired - 1]
                                rise_u = fired_rise[n_fired - 1]
                            for m in range(N):
                                I[m] += row[m] * (1.0 - dl * its_h[m])
                                V[m] += row[m] * (dl * itm_h[m])
                                if done[m]:
                                    continue
                                # a neuron fires in this step if its V at t_{n+1} is over threshold,
                                # at its exact crossing after this kick
                                x = cand_pos[m]
                                if V[m] >= threshold:
                                    if nq[m] < 0:
                                        P[m] = V0[m]
                                        Q[m] = I0[m] * itm_h[m]
                                        nq[m] = 0
                                    dm = its_h[m] - itm_h[m]
                                    for f in range(nq[m], n_fired):  # the PSPs it has not taken yet
                                        if homogeneous:
                                            g = W_rec[fired[f], m] * itm_h[m] * fired_eus[f]
                                            P[m] -= g * fired_rise[f]
                                        else:
                                            g = W_rec[fired[f], m] * itm_h[m] * math.exp(fired_u[f] * its_h[m])
                                            P[m] -= g * rise(fired_u[f], dm)
                                        Q[m] += g
                                    nq[m] = n_fired
                                    if not homogeneous:
                                        em_u = math.exp(-u * itm_h[m])
                                        es_u = math.exp(-u * its_h[m])
                                        rise_u = rise(u, dm)
                                    bound, exact = crossing_bound(u, em_u * (P[m] + Q[m] * rise_u),
                                                                  Q[m] * es_u / itm_h[m], itm_h[m], threshold, dt)
                                    if x < 0:
                                        x = n_cand
                                        n_cand += 1
                                        cand_id[x] = m
                                        cand_pos[m] = x
                                    elif row[m] == 0.0:
                                        continue  # unchanged
                                    elif row[m] < 0.0 and not exact:
                                        # an inhibitory PSP only delays the crossing: the old
                                        # bound holds too
                                        bound = max(bound, cand_u[x])
                                    cand_u[x] = bound
                                    cand_exact[x] = exact
                                elif x >= 0:
                                    n_cand -= 1
                                    cand_id[x] = cand_id[n_cand]
                                    cand_u[x] = cand_u[n_cand]
                                    cand_exact[x] = cand_exact[n_cand]
                                    cand_pos[cand_id[x]] = x
                                    cand_pos[m] = -1
                    for f in range(n_fired):
                        done[fired[f]] = False
                for k in range(K):
                    mean_v[s, n, k] = mv_o[k] * Vo[k] + mi_o[k] * Io[k]  # step 3
                    v = a_o[k] * Vo[k] + c_o[k] * Io[k]
                    i_next = b_o[k] * Io[k]
                    if record_samples:
                        trace_v[s, n, k] = v
                    if record_i:
                        trace_i[s, n, k] = i_next
                    if spiking_readout and v >= threshold:
                        if first_step[s, k] < 0:
                            u = crossing_time(Vo[k], Io[k], v, 1.0 / itm_o[k], 1.0 / its_o[k], dt,
                                              threshold, tol)
                            first_step[s, k] = n + 1
                            first_slope[s, k] = max(Io[k] * math.exp(-u * its_o[k]) - threshold, min_slope)
                            first_lag[s, k] = dt - u
                        v = 0.0
                    Vo[k] = v
                    Io[k] = i_next
                # step 5: spikes reach their targets at t_{n+1}
                for f in range(n_fired):
                    j = fired[f]
                    dl = lag[f]
                    if recurrent and not ordered:
                        row = W_rec[j]
                        for m in range(N):
                            I[m] += row[m] * (1.0 - dl * its_h[m])
                            V[m] += row[m] * (dl * itm_h[m])
                    row_o = W_out[j]
                    for k in range(K):
                        Io[k] += row_o[k] * (1.0 - dl * its_o[k])
                        Vo[k] += row_o[k] * (dl * itm_o[k])
            n_spikes[s] = ns


@njit(fastmath=_FASTMATH, cache=True)
def hidden_jump(s, q, j, dl, moved, lv, li, gtm, spike_slope, dl_dspike, has_spike_dl, reg_jump,
                tau_mem_h, tau_syn_h, threshold, train_tau):
    """The adjoint's jump at hidden spike q of neuron j, at its crossing dl before t_n, carried to
    t_n (spec §2); moved is what its PSP carried to its targets (the transport term)."""
    num = threshold * lv[j] * (1.0 - dl / tau_mem_h[j]) + moved
    if has_spike_dl:
        num += dl_dspike[s, q]
    jump = num / spike_slope[s, q] - reg_jump[j]
    if train_tau:
        # step 4 of the backward integrates lambda_V dV/dt over the whole step on the branch
        # before the spike; after the crossing the neuron is reset (dV/dt = I*/tau_m, not
        # (I* - threshold)/tau_m) and lambda_V has not jumped yet: the difference over the lag,
        # to first order in it
        lam_after = lv[j] * (1.0 - dl / tau_mem_h[j])
        gtm[j] += (dl / tau_mem_h[j]) * (threshold * lam_after - jump * spike_slope[s, q])
    lv[j] += jump * (1.0 + dl / tau_mem_h[j])
    li[j] -= jump * (dl / tau_syn_h[j])


@njit(parallel=True, fastmath=_FASTMATH, cache=True)
def backward_kernel(
    n_chunks, in_ptr, in_step, in_ch, n_steps,
    W_rec, W_out,
    a_h, b_h, d_h, a_o, b_o, d_o, mv_o, mi_o, tau_mem_h, tau_syn_h, tau_mem_o, tau_syn_o,
    dt, threshold, recurrent, ordered,
    spike_step, spike_id, spike_slope, spike_lag, n_spikes,
    dl_dmean, dl_dtrace, dl_dtrace_i, first_step, first_slope, first_lag, dl_dfirst, dl_dspike, reg_jump,
    state_v, state_i, da_m, dc_m, dc_s, db_s,
    probe_slot, probe_lv, probe_li, probe_lvo, probe_lio, probe_transport,
    g_in, g_rec, g_out, g_tau_m, g_tau_s,
):
    """Accumulate, per chunk, sum of lambda_I at presynaptic spikes (the caller scales by -tau_syn)
    and the tau gradients."""
    B = in_ptr.shape[0] - 1
    N = W_out.shape[0]
    K = W_out.shape[1]
    has_mean = dl_dmean.shape[0] > 0
    has_trace = dl_dtrace.shape[0] > 0
    has_trace_i = dl_dtrace_i.shape[0] > 0
    has_first = first_step.shape[0] > 0
    has_spike_dl = dl_dspike.shape[0] > 0
    train_tau = state_v.shape[0] > 0
    for chunk in prange(n_chunks):
        lv = np.zeros(N, W_out.dtype)
        li = np.zeros(N, W_out.dtype)
        lvo = np.zeros(K, W_out.dtype)
        lio = np.zeros(K, W_out.dtype)
        diff = np.zeros(N, W_out.dtype)
        diff_o = np.zeros(K, W_out.dtype)
        corr = np.zeros(N, W_out.dtype)
        corr_o = np.zeros(K, W_out.dtype)
        dsyn = np.zeros(N, W_out.dtype)
        dsyn_o = np.zeros(K, W_out.dtype)
        moved = np.zeros(N, W_out.dtype)
        gi = g_in[chunk]
        gr = g_rec[chunk]
        go = g_out[chunk]
        gtm = g_tau_m[chunk]
        gts = g_tau_s[chunk]
        for s in range(chunk, B, n_chunks):
            lv[:] = 0.0
            li[:] = 0.0
            lvo[:] = 0.0
            lio[:] = 0.0
            slot = probe_slot[s]
            p = n_spikes[s] - 1
            e = in_ptr[s + 1] - 1
            e_start = in_ptr[s]
            for n in range(n_steps, 0, -1):
                # step 1-2: hidden spikes at t_n (spec §2, jump at a hidden spike)
                q_hi = p
                while p >= 0 and spike_step[s, p] == n:
                    p -= 1
                if q_hi > p:
                    # lambda at the crossing, lag before t_n, to first order in the lag
                    for m in range(N):
                        diff[m] = lv[m] - li[m]
                        dsyn[m] = diff[m] / tau_syn_h[m]
                        corr[m] = lv[m] / tau_mem_h[m] + dsyn[m]
                    for k in range(K):
                        diff_o[k] = lvo[k] - lio[k]
                        dsyn_o[k] = diff_o[k] / tau_syn_o[k]
                        corr_o[k] = lvo[k] / tau_mem_o[k] + dsyn_o[k]
                        if has_mean:  # the part of this step's source that lies after the crossing
                            corr_o[k] += dl_dmean[s, n - 1, k] / (dt * tau_mem_o[k])
                    # ordered: the step's spikes latest first, each one's jump applied before
                    # the earlier ones read lambda (the forward's order in a step); else all read
                    # lambda at t_n, as the forward's spikes did not see each other in the step
                    for x in range(q_hi - p):
                        q = q_hi - x if ordered else p + 1 + x
                        j = spike_id[s, q]
                        dl = spike_lag[s, q]
                        t = 0.0
                        row_o = W_out[j]
                        go_j = go[j]
                        for k in range(K):
                            go_j[k] += lio[k] + dl * dsyn_o[k]
                            t += row_o[k] * (diff_o[k] - dl * corr_o[k])
                        if recurrent:
                            row = W_rec[j]
                            gr_j = gr[j]
                            for m in range(N):
                                gr_j[m] += li[m] + dl * dsyn[m]
                                t += row[m] * (diff[m] - dl * corr[m])
                            if train_tau:
                                # the PSP's first lag of decay (forward step 5, w(1 - lag/tau_s) and
                                # w lag/tau_m) depends on the target's tau: spec §10's integrals
                                # of lambda_V dV/dt and lambda_I dI/dt over [crossing, t_n]
                                for m in range(N):
                                    wl = row[m] * dl
                                    gtm[m] += lv[m] * wl / tau_mem_h[m]
                                    gts[m] -= li[m] * wl / tau_syn_h[m]
                        moved[q - p - 1] = t
                        if slot >= 0:
                            probe_transport[slot, q] = t
                        if ordered:
                            hidden_jump(s, q, j, dl, t, lv, li, gtm, spike_slope, dl_dspike, has_spike_dl,
                                        reg_jump, tau_mem_h, tau_syn_h, threshold, train_tau)
                            diff[j] = lv[j] - li[j]
                            dsyn[j] = diff[j] / tau_syn_h[j]
                            corr[j] = lv[j] / tau_mem_h[j] + dsyn[j]
                    if not ordered:
                        for q in range(p + 1, q_hi + 1):
                            hidden_jump(s, q, spike_id[s, q], spike_lag[s, q], moved[q - p - 1], lv, li, gtm,
                                        spike_slope, dl_dspike, has_spike_dl, reg_jump, tau_mem_h, tau_syn_h,
                                        threshold, train_tau)
                # step 3: loss source on the sampled readout voltage V(t_n), and the first spike
                # of a spiking readout (dt/dV = 1/slope). Hidden spikes of this step arrive after
                # V_out(t_n) is fixed, so they must not see these.
                if has_trace:
                    for k in range(K):
                        lvo[k] -= dl_dtrace[s, n - 1, k] / tau_mem_o[k]
                if has_trace_i:  # and on the readout current there (the max loss's candidates)
                    for k in range(K):
                        lio[k] -= dl_dtrace_i[s, n - 1, k] / tau_syn_o[k]
                if has_first:
                    for k in range(K):
                        if first_step[s, k] == n:
                            jump = dl_dfirst[s, k] / first_slope[s, k]
                            lvo[k] += jump * (1.0 + first_lag[s, k] / tau_mem_o[k])
                            lio[k] -= jump * (first_lag[s, k] / tau_syn_o[k])
                if slot >= 0:
                    for j in range(N):
                        probe_lv[slot, n - 1, j] = lv[j]
                        probe_li[slot, n - 1, j] = li[j]
                    for k in range(K):
                        probe_lvo[slot, n - 1, k] = lvo[k]
                        probe_lio[slot, n - 1, k] = lio[k]
                # step 4: exact derivative of the step map for tau, then step back to t_{n-1}
                if train_tau:
                    for j in range(N):
                        v0 = state_v[s, n - 1, j]
                        i0 = state_i[s, n - 1, j]
                        mu_v = -tau_mem_h[j] * lv[j]
                        gtm[j] += mu_v * (da_m[j] * v0 + dc_m[j] * i0)
                        gts[j] += (mu_v * dc_s[j] - tau_syn_h[j] * li[j] * db_s[j]) * i0
                for j in range(N):
                    li[j] = b_h[j] * li[j] + d_h[j] * lv[j]
                    lv[j] = a_h[j] * lv[j]
                for k in range(K):
                    lio[k] = b_o[k] * lio[k] + d_o[k] * lvo[k]
                    lvo[k] = a_o[k] * lvo[k]
                # step 5: source on the mean readout voltage over step n-1, which depends on the
                # state at t_{n-1}: a source spread over the step, so no sawtooth in lambda
                if has_mean:
                    for k in range(K):
                        ell = dl_dmean[s, n - 1, k]
                        lvo[k] -= mv_o[k] * ell / tau_mem_o[k]
                        lio[k] -= mi_o[k] * ell / tau_syn_o[k]
                # step 6: input events of step n-1 sample lambda_I
                while e >= e_start and in_step[e] == n - 1:
                    gi_row = gi[in_ch[e]]
                    for j in range(N):
                        gi_row[j] += li[j]
                    e -= 1
