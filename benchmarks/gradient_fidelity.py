"""How close the engine's gradient is to the exact continuous-time gradient, and how fast it converges.

Draws random small networks from a seed sequence (tests/exact_reference.random_network: 20 inputs,
8 recurrent hidden, 3 readouts, T = 100 ms, heterogeneous τ with one τ_m = τ_s neuron; first_spike
networks get W_out = |W_out| + 1 so that readouts fire). None is hand-picked; a network is skipped,
and counted, only when
- two hidden spikes of the exact simulation come closer than --gap ms (the grid cannot resolve a
  spike that another triggers within the same step: docs/engine.md, "Known limits"), or
- (first_spike) a label readout never fires, so the loss is infinite.
The exact gradient is the 4th-order finite difference of the exact event-driven float64 simulation
(tests/fd.py: three steps, kept where two agree, discarded where a spike appears, vanishes or
reorders), at --entries random entries per parameter kind. The engine's float64 gradient is taken at
every --dts value; the error of a kind on a network is |g_engine − g_exact| / |g_exact| over its
checked entries. Input times lie on a --input-grid ms grid (default 1 ms: on every dt's grid, so
binning plays no part; --input-grid 0 draws them off the grid).

Prints, per loss × kind, the median and worst error at each dt and the fitted convergence order
(least-squares slope of log error against log dt over the dts ≤ 0.1 ms, for the median and for the
worst network), and one RESULT line.

    python benchmarks/gradient_fidelity.py --networks 50              # ~7 min on 2 busy cores
    python benchmarks/gradient_fidelity.py --networks 8 --losses sum_exp,max --dts 1,0.1,0.01
"""
import argparse
import json
import os
import sys
import time

import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [_ROOT, os.path.join(_ROOT, "tests")]  # this checkout's kernels, not an installed one
from fidelity import (ALL_LOSSES, KINDS, STAT_LOSSES, draw, engine_errors, exact_gradients,  # noqa: E402
                      fitted_order, skip_reason)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--networks", type=int, default=50, help="networks drawn per loss family")
    ap.add_argument("--dts", default="1,0.1,0.01,0.0025")
    ap.add_argument("--gap", type=float, default=0.01, help="skip networks with hidden spikes closer than this (ms)")
    ap.add_argument("--entries", type=int, default=3, help="checked entries per parameter kind")
    ap.add_argument("--losses", default=",".join(ALL_LOSSES))
    ap.add_argument("--input-grid", type=float, default=1.0, help="input times on this grid (ms); 0: off-grid")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--json", help="write every network's errors here")
    ap.add_argument("--plain", action="store_true",
                    help="the plain grid scheme (in_step_order=False: a step's spikes meet only at its end)")
    args = ap.parse_args(argv)
    dts = [float(x) for x in args.dts.split(",")]
    losses = [x for x in args.losses.split(",") if x]
    unknown = set(losses) - set(ALL_LOSSES)
    if unknown:
        ap.error(f"no exact reference for {sorted(unknown)}")
    families = [[n for n in losses if n in STAT_LOSSES], [n for n in losses if n == "first_spike"]]
    errors = {n: {k: [[] for _ in dts] for k in KINDS} for n in losses}
    per_network, skipped, mismatch, used = [], {}, {n: [0] * len(dts) for n in losses}, {}
    t0 = time.time()
    for family in (f for f in families if f):
        fam = family[0] if family == ["first_spike"] else "statistic"
        children = np.random.SeedSequence([args.seed, len(fam)]).spawn(args.networks)
        skipped[fam] = {"close spikes": 0, "silent label readout": 0}
        used[fam] = 0
        for i, child in enumerate(children):
            params, samples, labels, rng = draw(child, family[0], args.input_grid or None)
            why = skip_reason(params, samples, labels if fam == "first_spike" else [], args.gap)
            if why:
                skipped[fam][why] += 1
                continue
            used[fam] += 1
            exact = exact_gradients(params, samples, labels, family, args.entries, rng)
            for name in family:
                rows = engine_errors(params, samples, labels, name, exact[name], dts, in_step_order=not args.plain)
                for d, (err, same) in enumerate(rows):
                    mismatch[name][d] += not same
                    for kind, e in err.items():
                        errors[name][kind][d].append(e)
                per_network.append(dict(loss=name, network=i, errors=[r[0] for r in rows],
                                        same_spikes=[r[1] for r in rows]))
            print(f"  {fam} network {i}: done ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)

    print(f"gradient fidelity: engine (float64) against exact finite differences; {args.entries} entries per kind;"
          f" input grid {args.input_grid or 'off-grid'} ms; skip if hidden spikes closer than {args.gap} ms")
    for fam in used:
        print(f"  {fam}: {args.networks} drawn, {used[fam]} used, skipped: "
              + ", ".join(f"{v} {k}" for k, v in skipped[fam].items()))
    head = "  ".join(f"{'dt=' + format(dt, 'g'):>17s}" for dt in dts)
    print(f"\n{'loss':12s} {'kind':8s} {'n':>3s}  {head}  {'order (fit ≤ 0.1)':>17s}  {'last two dt':>11s}")
    print(f"{'':12s} {'':8s} {'':3s}  " + "  ".join(f"{'median':>8s} {'worst':>8s}" for _ in dts)
          + f"  {'median':>8s} {'worst':>8s}  {'median':>11s}")
    result = {}
    for name in losses:
        for kind in KINDS:
            cols = errors[name][kind]
            if not cols[0]:
                continue
            med = [float(np.median(c)) for c in cols]
            worst = [float(np.max(c)) for c in cols]
            om, ow = fitted_order(dts, med), fitted_order(dts, worst)
            last = fitted_order(dts[-2:], med[-2:], upto=np.inf)
            result[f"{name}.{kind}"] = round(om, 2)
            print(f"{name:12s} {kind:8s} {len(cols[0]):3d}  "
                  + "  ".join(f"{m:8.1e} {w:8.1e}" for m, w in zip(med, worst))
                  + f"  {om:8.2f} {ow:8.2f}  {last:11.2f}")
        print(f"{name:12s} grid network fired differently from the exact one at dt = "
              + ", ".join(f"{dt:g}: {m}" for dt, m in zip(dts, mismatch[name])))
    print(f"time {time.time() - t0:.0f} s")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(args=vars(args), skipped=skipped, used=used, networks=per_network), fh)
    print("RESULT " + " ".join(f"order_{k}={v}" for k, v in result.items()))


if __name__ == "__main__":
    main()
