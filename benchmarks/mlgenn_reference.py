"""mlGeNN's EventProp on an SHD-layout train/test pair: the reference that per-epoch accuracy is
compared against (issue "The paper's findings on real speech").

Needs ml_genn and pygenn (built from GeNN's source; not on PyPI) in the Python that runs it; it
reads the .h5 files with h5py only, so it does not need this project installed.

    python benchmarks/mlgenn_reference.py data_cache/tts-digits/tts_digits_train.h5 \
        data_cache/tts-digits/tts_digits_test.h5 --epochs 5 --backend single_threaded_cpu --out runs/mlgenn.csv

The network follows mlGeNN's own SHD example (examples/event_prop/shd.py): input → 256 recurrent
LIF (τ_m 20 ms, τ_s 5 ms) → LI readouts with the exponentially weighted mean voltage (= sum_exp),
inits N(0.03, 0.01), N(0, 0.02), N(0, 0.03), Adam lr 1e-3, regulariser 2.5e-10 / ν 14. GeNN's CPU
backend runs batch size 1 only. Prints one line per epoch and writes a CSV of
epoch, train accuracy, test accuracy, the hidden layer's mean rate over the epoch's training
samples (Hz, from the regulariser's own per-neuron spike count) and cumulative wall seconds."""
import argparse
import csv
import os
import sys
import time

import h5py
import numpy as np


def read_h5(path, n_channels):
    with h5py.File(path, "r") as f:
        times = [np.asarray(t, np.float64) * 1000.0 for t in f["spikes/times"]]
        units = [np.asarray(u, np.int64) for u in f["spikes/units"]]
        labels = np.asarray(f["labels"], np.int64)
    return times, units, labels


def load_weights(path, shapes):
    """W_in, W_rec, W_out from an .npz: plain keys or this project's checkpoint keys (params/W_in)."""
    with np.load(path, allow_pickle=False) as f:
        out = {}
        for name, shape in shapes.items():
            key = name if name in f.files else f"params/{name}"
            if key not in f.files:
                raise SystemExit(f"{path} has no {name} (keys: {', '.join(f.files)})")
            w = np.asarray(f[key], np.float32)
            if w.shape != shape:
                raise SystemExit(f"{path}: {name} has shape {w.shape}, this network needs {shape}")
            out[name] = w
    return out


def write_npz(path, arrays):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def probe_gradients(args, compiled, conns, shapes, hidden, out, inp, sets, steps):
    """mlGeNN runs the backward pass of example b during the forward pass of example b + 1 and
    applies the update at the end of batch b + 1, then zeroes the gradient; so the gradient of
    example b is read at the last time step of batch b + 1. The learning rate is 0: every example
    sees the initial weights."""
    from ml_genn.callbacks import Callback

    k = args.gradients
    spikes, labels = sets["train"][0][:k], sets["train"][1][:k]
    x = list(spikes) + [spikes[-1]]  # one more example carries the last backward pass
    y = np.concatenate([labels, labels[-1:]])
    grads = {name: np.zeros((k,) + shapes[name], np.float32) for name in conns}
    counts = np.zeros((k, args.hidden), np.int64)
    n_out = int(max(sets["train"][1].max(), sets["test"][1].max()) + 1)
    readout = np.zeros((k, n_out), np.float32)
    # the adjoints of the first sample, in that sample's own (forward) time
    traces = {f"{what}/{pop}": np.zeros((steps, n), np.float32) for what in ("lambda_v", "lambda_i")
              for pop, n in (("hidden", args.hidden), ("out", n_out))}

    class Probe(Callback):
        def set_params(self, compiled_network, **kwargs):
            self.net = compiled_network
            self.batch = 0

        def on_batch_begin(self, batch):
            self.batch = batch

        def on_timestep_end(self, timestep):
            b = self.batch
            if b == 1:  # the backward pass of example 0 runs backwards in time during batch 1
                for what, var in (("lambda_v", "LambdaV"), ("lambda_i", "LambdaI")):
                    for pop_name, pop in (("hidden", hidden), ("out", out)):
                        v = self.net.neuron_populations[pop].vars[var]
                        v.pull_from_device()
                        traces[f"{what}/{pop_name}"][steps - 1 - timestep] = np.asarray(v.view).reshape(-1)
            if timestep == steps - 1 and 1 <= b <= k:
                for name, conn in conns.items():
                    g = self.net.connection_populations[conn].vars["Gradient"]
                    g.pull_from_device()
                    grads[name][b - 1] = np.asarray(g.view, np.float32).reshape(shapes[name])

        def on_batch_end(self, batch, metrics):
            if batch < k:
                c = self.net.neuron_populations[hidden].vars["SpikeCount"]
                c.pull_from_device()
                counts[batch] = np.asarray(c.view).reshape(-1)
                v = self.net.neuron_populations[out].vars["VAvg"]
                v.pull_from_device()
                readout[batch] = np.asarray(v.view).reshape(-1)

    with compiled:
        compiled.train({inp: x}, {out: y}, num_epochs=1, shuffle=False, callbacks=[Probe()])
    write_npz(args.gradients_out, {**{f"grad/{n}": g for n, g in grads.items()}, "counts": counts,
                                   "readout": readout, "labels": labels, **traces})
    print(f"gradients of {k} samples in {args.gradients_out}", flush=True)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("train")
    ap.add_argument("test")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=1, help="1 on GeNN's CPU backend")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--reg", type=float, default=2.5e-10, help="reg_lambda_upper and _lower")
    ap.add_argument("--trial-ms", type=float, default=1000.0,
                    help="example length; mlGeNN's example uses the latest spike time instead (0: do that)")
    ap.add_argument("--max-train", type=int, default=None, help="use only the first N training samples")
    ap.add_argument("--backend", default="single_threaded_cpu", help="single_threaded_cpu or cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="CSV of per-epoch results")
    ap.add_argument("--init", default=None,
                    help="start from these weights: an .npz with W_in, W_rec, W_out (or params/W_in, ... as in "
                         "this project's checkpoints) instead of mlGeNN's own draw")
    ap.add_argument("--save-init", default=None, help="write the initial weights to this .npz (W_in, W_rec, W_out)")
    ap.add_argument("--save-final", default=None, help="write the trained weights to this .npz (W_in, W_rec, W_out)")
    ap.add_argument("--gradients", type=int, default=0, metavar="K",
                    help="do not train: write mlGeNN's gradient, hidden spike counts and readout of each of the first "
                         "K training samples (file order) at the initial weights to --gradients-out")
    ap.add_argument("--gradients-out", default="runs/mlgenn_gradients.npz")
    args = ap.parse_args(argv)
    if args.gradients and args.batch_size != 1:
        ap.error("--gradients needs --batch-size 1")
    if args.gradients and args.reg <= 0:
        ap.error("--gradients reads the regulariser's spike count: give --reg > 0 "
                 "(--reg 1e-30 keeps the regulariser off in effect)")

    from ml_genn import Connection, Network, Population
    from ml_genn.callbacks import Callback
    from ml_genn.compilers import EventPropCompiler
    from ml_genn.compilers.event_prop_compiler import default_params
    from ml_genn.connectivity import Dense
    from ml_genn.initializers import Normal
    from ml_genn.neurons import LeakyIntegrate, LeakyIntegrateFire, SpikeInput
    from ml_genn.optimisers import Adam
    from ml_genn.synapses import Exponential
    from ml_genn.utils.data import calc_latest_spike_time, calc_max_spikes, preprocess_spikes

    n_in = 700
    np.random.seed(args.seed)  # mlGeNN shuffles with numpy's global generator
    sets = {}
    for name, path in (("train", args.train), ("test", args.test)):
        times, units, labels = read_h5(path, n_in)
        if name == "train" and args.max_train:
            times, units, labels = times[:args.max_train], units[:args.max_train], labels[:args.max_train]
        keep = [t < (args.trial_ms or np.inf) for t in times]
        spikes = [preprocess_spikes(t[k], u[k], n_in) for t, u, k in zip(times, units, keep)]
        sets[name] = (spikes, labels)
    n_out = int(max(sets["train"][1].max(), sets["test"][1].max()) + 1)
    all_spikes = sets["train"][0] + sets["test"][0]
    max_spikes = calc_max_spikes(all_spikes)
    steps = int(np.ceil(args.trial_ms if args.trial_ms else calc_latest_spike_time(all_spikes)))

    inits = {"W_in": Normal(mean=0.03, sd=0.01), "W_rec": Normal(mean=0.0, sd=0.02), "W_out": Normal(mean=0.0, sd=0.03)}
    shapes = {"W_in": (n_in, args.hidden), "W_rec": (args.hidden, args.hidden), "W_out": (args.hidden, n_out)}
    if args.init:
        inits = load_weights(args.init, shapes)
    network = Network(default_params)
    with network:
        inp = Population(SpikeInput(max_spikes=args.batch_size * max_spikes), n_in)
        hidden = Population(LeakyIntegrateFire(v_thresh=1.0, tau_mem=20.0, tau_refrac=None), args.hidden)
        out = Population(LeakyIntegrate(tau_mem=20.0, readout="avg_var_exp_weight"), n_out)
        conns = {"W_in": Connection(inp, hidden, Dense(inits["W_in"]), Exponential(5.0)),
                 "W_rec": Connection(hidden, hidden, Dense(inits["W_rec"]), Exponential(5.0)),
                 "W_out": Connection(hidden, out, Dense(inits["W_out"]), Exponential(5.0))}
    compiler = EventPropCompiler(example_timesteps=steps, losses="sparse_categorical_crossentropy",
                                 reg_lambda_upper=args.reg, reg_lambda_lower=args.reg, reg_nu_upper=14,
                                 max_spikes=1500, optimiser=Adam(0.0 if args.gradients else args.lr),
                                 batch_size=args.batch_size,
                                 rng_seed=args.seed, backend=args.backend)
    t0 = time.perf_counter()
    compiled = compiler.compile(network)
    build_s = time.perf_counter() - t0
    rows = []

    class Train(Callback):
        def set_params(self, compiled_network, **kwargs):
            # SpikeCount is the regulariser's per-neuron count of the example's forward pass; it
            # is reset at the next batch's start, so it is read at the batch's end
            self.count = compiled_network.neuron_populations[hidden].vars["SpikeCount"]

        def on_epoch_begin(self, epoch):
            self.t = time.perf_counter()
            self.spikes = 0
            self.examples = 0

        def on_batch_end(self, batch, metrics):
            self.count.pull_from_device()
            self.spikes += int(self.count.view.sum())
            self.examples += args.batch_size

        def on_epoch_end(self, epoch, metrics):
            hz = self.spikes / (self.examples * args.hidden * steps / 1000.0)
            rows.append({"epoch": epoch + 1, "train_accuracy": metrics[out].result,
                         "hidden_hz": hz, "train_s": time.perf_counter() - self.t})

    class Test(Callback):
        def on_epoch_end(self, epoch, metrics):
            rows[-1]["test_accuracy"] = metrics[out].result
            rows[-1]["wall_s"] = time.perf_counter() - t_start
            r = rows[-1]
            print(f"epoch {r['epoch']:>3}  train acc {r['train_accuracy']:.3f}  test acc {r['test_accuracy']:.3f}  "
                  f"hidden {r['hidden_hz']:.1f} Hz  "
                  f"({r['train_s']:.0f} s training, {r['wall_s']:.0f} s in all)", flush=True)

    print(f"mlGeNN {args.backend}: {len(sets['train'][1])} train, {len(sets['test'][1])} test, "
          f"{steps} steps, batch {args.batch_size}; model built in {build_s:.1f} s", flush=True)
    if args.gradients:
        return probe_gradients(args, compiled, conns, shapes, hidden, out, inp, sets, steps)
    with compiled:
        def save_weights(path, what):
            weights = {}
            for name, conn in conns.items():
                g = compiled.connection_populations[conn].vars["g"]
                g.pull_from_device()
                weights[name] = np.array(g.view, np.float32).reshape(shapes[name])
            write_npz(path, weights)
            print(f"{what} weights in {path}", flush=True)

        if args.save_init:
            save_weights(args.save_init, "initial")
        t_start = time.perf_counter()
        compiled.train({inp: sets["train"][0]}, {out: sets["train"][1]}, num_epochs=args.epochs, shuffle=True,
                       callbacks=[Train()], validation_callbacks=[Test()],
                       validation_x={inp: sets["test"][0]}, validation_y={out: sets["test"][1]})
        if args.save_final:
            save_weights(args.save_final, "trained")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["epoch", "train_accuracy", "test_accuracy", "hidden_hz", "train_s",
                                              "wall_s"])
            w.writeheader()
            w.writerows(rows)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
