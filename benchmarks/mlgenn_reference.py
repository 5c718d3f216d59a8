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
    args = ap.parse_args(argv)

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

    network = Network(default_params)
    with network:
        inp = Population(SpikeInput(max_spikes=args.batch_size * max_spikes), n_in)
        hidden = Population(LeakyIntegrateFire(v_thresh=1.0, tau_mem=20.0, tau_refrac=None), args.hidden)
        out = Population(LeakyIntegrate(tau_mem=20.0, readout="avg_var_exp_weight"), n_out)
        Connection(inp, hidden, Dense(Normal(mean=0.03, sd=0.01)), Exponential(5.0))
        Connection(hidden, hidden, Dense(Normal(mean=0.0, sd=0.02)), Exponential(5.0))
        Connection(hidden, out, Dense(Normal(mean=0.0, sd=0.03)), Exponential(5.0))
    compiler = EventPropCompiler(example_timesteps=steps, losses="sparse_categorical_crossentropy",
                                 reg_lambda_upper=args.reg, reg_lambda_lower=args.reg, reg_nu_upper=14,
                                 max_spikes=1500, optimiser=Adam(args.lr), batch_size=args.batch_size,
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
    with compiled:
        t_start = time.perf_counter()
        compiled.train({inp: sets["train"][0]}, {out: sets["train"][1]}, num_epochs=args.epochs, shuffle=True,
                       callbacks=[Train()], validation_callbacks=[Test()],
                       validation_x={inp: sets["test"][0]}, validation_y={out: sets["test"][1]})
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
