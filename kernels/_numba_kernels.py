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
def state_in_step(m, u, v0, i0, fired, fired_u, n_fired, W_rec, tau_mem, tau_syn):
    """V and I of hidden neuron m at time u into the step, exactly: its own state at the step's
    start (v0, i0) and the PSPs of the step's spikes before u (none of which it has fired)."""
    v = voltage_after(u, v0, i0, tau_mem, tau_syn)
    i = i0 * math.exp(-u / tau_syn)
    for f in range(n_fired):
        du = u - fired_u[f]
        if du >= 0.0:
            w = W_rec[fired[f], m]
            v += voltage_after(du, 0.0, w, tau_mem, tau_syn)
            i += w * math.exp(-du / tau_syn)
    return v, i


@njit(fastmath=_FASTMATH, cache=True)
def crossing_after_kick(v, i, u, tau_mem, tau_syn, dt, threshold, tol):
    """When a neuron in state (v, i) at time u into the step, just kicked by a spike of the step,
    crosses threshold before the step ends: its crossing time (exact, in the step's time), or -1.0
    if none."""
    rest = dt - u
    v_end = voltage_after(rest, v, i, tau_mem, tau_syn)
    if v_end < threshold:
        return -1.0
    return u + crossing_time(v, i, v_end, tau_mem, tau_syn, rest, threshold, tol)


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
    for chunk in prange(n_chunks):
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
        # the exact state (kv, ki) of a neuron at time ku into the step, PSPs of the step's spikes
        # up to ku included, kept while the neuron stays over threshold at the step's end, so
        # that each kick costs one advance instead of a sum over the step's spikes
        kv = np.empty(N, W_in.dtype)
        ki = np.empty(N, W_in.dtype)
        ku = np.empty(N, W_in.dtype)
        kept = np.zeros(N, np.bool_)
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
                    # cause (kick) another one in the same step (docs/engine.md, "Order in a step")
                    n_cand = 0
                    for j in range(N):
                        V0[j] = V[j]
                        I0[j] = I[j]
                        kept[j] = False
                        v = a_h[j] * V[j] + c_h[j] * I[j]
                        I[j] = b_h[j] * I[j]
                        V[j] = v
                        if v >= threshold:
                            cand_id[n_cand] = j
                            cand_u[n_cand] = crossing_time(V0[j], I0[j], v, 1.0 / itm_h[j], 1.0 / its_h[j],
                                                           dt, threshold, tol)
                            cand_pos[j] = n_cand
                            n_cand += 1
                    while n_cand > 0:
                        c = 0
                        for x in range(1, n_cand):
                            if cand_u[x] < cand_u[c]:
                                c = x
                        j = cand_id[c]
                        u = cand_u[c]
                        n_cand -= 1
                        cand_id[c] = cand_id[n_cand]
                        cand_u[c] = cand_u[n_cand]
                        cand_pos[cand_id[c]] = c
                        cand_pos[j] = -1
                        tm_j = 1.0 / itm_h[j]
                        ts_j = 1.0 / its_h[j]
                        if recurrent and kept[j]:
                            i_cross = ki[j] * math.exp(-(u - ku[j]) * its_h[j])
                        elif recurrent:
                            _, i_cross = state_in_step(j, u, V0[j], I0[j], fired, fired_u, n_fired,
                                                        W_rec, tm_j, ts_j)
                        else:
                            i_cross = I0[j] * math.exp(-u * its_h[j])
                        dl = dt - u
                        fired[n_fired] = j
                        fired_u[n_fired] = u
                        lag[n_fired] = dl
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
                        V[j] = voltage_after(dl, 0.0, i_cross, tm_j, ts_j)
                        if recurrent:
                            row = W_rec[j]
                            for m in range(N):
                                I[m] += row[m] * (1.0 - dl * its_h[m])
                                V[m] += row[m] * (dl * itm_h[m])
                                if done[m]:
                                    continue
                                # a neuron fires in this step if its V at t_{n+1} is over threshold,
                                # at its exact crossing after this kick
                                x = cand_pos[m]
                                if V[m] >= threshold:
                                    tm_m = 1.0 / itm_h[m]
                                    ts_m = 1.0 / its_h[m]
                                    if kept[m]:
                                        du = u - ku[m]
                                        kv[m] = voltage_after(du, kv[m], ki[m], tm_m, ts_m)
                                        ki[m] = ki[m] * math.exp(-du * its_h[m]) + row[m]
                                    else:
                                        kv[m], ki[m] = state_in_step(m, u, V0[m], I0[m], fired, fired_u,
                                                                     n_fired, W_rec, tm_m, ts_m)
                                        kept[m] = True
                                    ku[m] = u
                                    um = crossing_after_kick(kv[m], ki[m], u, tm_m, ts_m, dt, threshold, tol)
                                    if um < 0.0:
                                        # the first-order PSP at t_{n+1} is over threshold where the
                                        # exact voltage is not: a crossing at the step's end
                                        um = dt
                                    if x < 0:
                                        x = n_cand
                                        n_cand += 1
                                        cand_id[x] = m
                                        cand_pos[m] = x
                                    cand_u[x] = um
                                else:
                                    kept[m] = False
                                    if x < 0:
                                        continue
                                    n_cand -= 1
                                    cand_id[x] = cand_id[n_cand]
                                    cand_u[x] = cand_u[n_cand]
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
