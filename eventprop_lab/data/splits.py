"""Train/validation splits, leave-one-speaker-out folds (spec §6, model selection on SHD), and
the minibatches of an epoch.

Everything random takes a ``numpy.random.Generator`` (or a seed) from the caller, so a run is
reproducible from its seeds; indices are returned sorted unless they are meant to be shuffled."""
import numpy as np

BLENDED_SPEAKER = -1


def train_validation_split(dataset, fraction=0.1, rng=None, by_speaker=False):
    """(train_indices, validation_indices) of `dataset`, disjoint and together covering it.

    Default: a random split stratified by class. Within each class samples are ranked at random
    and placed at evenly spaced quantiles; the round(fraction * n) lowest go to validation, so
    every class gives about `fraction` of its samples and the total is exact.

    by_speaker=True holds out whole speakers instead: round(fraction * n_speakers) of them, at
    least one, chosen at random. Blended samples (speaker -1) always stay in training.

    rng (a seed or Generator) is required: an unseeded split would change when a run resumes and
    mix validation samples into training."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie strictly between 0 and 1, got {fraction}")
    if rng is None:
        raise ValueError("train_validation_split needs rng (a seed or Generator) so the split is reproducible")
    rng = np.random.default_rng(rng)
    n = len(dataset)
    if by_speaker:
        speakers = np.unique(dataset.speakers)
        speakers = speakers[speakers != BLENDED_SPEAKER]
        if len(speakers) < 2:
            raise ValueError(f"holding out speakers needs at least two, found {len(speakers)}")
        n_held = min(max(1, int(round(fraction * len(speakers)))), len(speakers) - 1)
        held = rng.choice(speakers, n_held, replace=False)
        validation = np.isin(dataset.speakers, held)
    else:
        labels = dataset.labels
        order = np.lexsort((rng.random(n), labels))
        _, start, count = np.unique(labels[order], return_index=True, return_counts=True)
        rank, size = np.empty(n), np.empty(n)
        rank[order] = np.arange(n) - np.repeat(start, count)
        size[order] = np.repeat(count, count)
        # the random offset within each quantile slot breaks ties between classes fairly
        position = (rank + rng.random(n)) / size
        validation = np.zeros(n, bool)
        validation[np.argsort(position, kind="stable")[:int(round(fraction * n))]] = True
    return np.flatnonzero(~validation), np.flatnonzero(validation)


def leave_one_speaker_out(dataset):
    """Yield (speaker, train_indices, validation_indices), one fold per speaker (sorted), with
    that speaker's samples as validation and all others as training. Blended samples (speaker
    -1) get no fold of their own and sit in every training set; note that they carry spikes of
    the held-out speaker if they were blended before splitting, so blend per fold instead."""
    speakers = dataset.speakers
    for speaker in np.unique(speakers):
        if speaker == BLENDED_SPEAKER:
            continue
        held = speakers == speaker
        yield int(speaker), np.flatnonzero(~held), np.flatnonzero(held)


def batches(n, batch_size, rng=None, drop_last=False):
    """Index arrays of the minibatches of one epoch over range(n): shuffled when rng is given,
    else in order. The last, smaller batch is kept unless drop_last."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = np.arange(n) if rng is None else np.random.default_rng(rng).permutation(n)
    stop = n - n % batch_size if drop_last else n
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def epoch_batches(dataset, batch_size, rng=None, augment=None, delay_line=None, drop_last=False):
    """Yield (samples, labels, indices) per minibatch of one epoch over `dataset`.

    samples is a list of (times_ms, channels), ready for
    ``kernels.make_batch(samples, n_channels, dt, n_steps)`` with n_channels =
    delay_line.n_inputs when a delay line is used, else dataset.n_channels. Each sample is
    augmented first (training data only) and then passed through the delay line (training and
    test data). The same rng shuffles and augments, so an epoch is fixed by its generator's
    state; rng=None keeps the dataset's order, as for evaluation."""
    if augment is not None and rng is None:
        raise ValueError("augmentation needs a random generator: pass rng")
    rng = None if rng is None else np.random.default_rng(rng)
    for indices in batches(len(dataset), batch_size, rng, drop_last):
        samples = []
        for i in indices:
            times, channels = dataset.sample(i)
            if augment is not None:
                times, channels = augment(times, channels, rng)
            if delay_line is not None:
                times, channels = delay_line(times, channels)
            samples.append((times, channels))
        yield samples, dataset.labels[indices], indices
