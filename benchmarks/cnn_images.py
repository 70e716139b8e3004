"""Float jet-image CNNs against the 16-feature MLP on one shard folder: what the image's
extent, resolution, frame and pixel values, and the CNN's width, are worth.

    python benchmarks/cnn_images.py --data FOLDER [--shards-per-class 100] [--epochs 40]
        [--variant PIXELS:EXTENT:FRAME:VALUES:FILTERS:DENSE ...] [--out results.jsonl]

FOLDER is a shard folder of ``hepfpga data generate`` (HDF5 shards named
``shard-c<k><class>-k<chunk>-s<seed>.h5``); the first ``--shards-per-class`` shards of each of
q, g, W, Z, t (in name order: the same jets in any folder of the same seed) are read and split
60/20/20 at random with seed 0, the same split for every row. Each variant is
``PIXELS:EXTENT:FRAME:VALUES:FILTERS:DENSE``: a ``PIXELS`` x ``PIXELS`` image over ``+-EXTENT``
(:func:`hepfpga.train.images.jet_images`), ``FRAME`` ``align`` (each jet in its own frame),
``alignpt`` (its own frame, the angles then multiplied by jet pT / 1 TeV:
``model.image_pt_reference: 1000``) or ``none``, ``VALUES`` ``lin`` (pT fractions), ``sqrt``
(their square roots), ``pt`` (the constituents' pT in TeV: the fractions times the jet pT / 1
TeV) or ``sqrtpt`` (its square roots), ``FILTERS`` the comma-separated filters of the 3x3 conv +
2x2 max-pool blocks, ``DENSE`` the dense layer's units (conv kernels L2 1e-5); an optional
``:NAMES`` suffix (comma-separated feature names, e.g. ``:mass_mmdt``) feeds those standardised
features beside the image, joined to the flattened maps before the dense layer
(``model.image_features``). ``mlp`` is the 16-64-32-32-5 MLP on the standardised features. Every
model is trained in float with Adam (2e-3, batch 1024, validation loss: early stopping after 6
epochs without improvement, learning rate halved after 3) for at most ``--epochs`` epochs; the
test accuracy is the fraction of test jets whose highest score is their class (its statistical
error about 0.3 points at 25,000 test jets; differences between rows on the same jets are known
better). One JSON line per variant on stdout and in ``--out``.

The README's large-scale section quotes one run of the default variants on the 362,500-jet
sample (``--shards-per-class 100``: 125,000 jets), with ``--epochs 40`` for the MLP and the
16x16 conv 8-16 rows and ``--epochs 60`` for the other two.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_VARIANTS = (
    "mlp",
    "16:0.8:none:lin:8,16:42",
    "16:0.4:none:lin:8,16:42",
    "16:0.4:align:lin:8,16:42",
    "16:0.4:align:sqrt:8,16:42",
    "16:0.4:align:sqrt:16,32:64",
    "32:0.4:align:sqrt:8,16:42",
)


def load(folder: Path, per_class: int) -> tuple[np.ndarray, ...]:
    """Constituents, features, labels and jet pT of the first ``per_class`` shards of each class,
    read with hepfpga's own sample reader."""
    from hepfpga.train.io import concatenate_samples, load_sample
    from hepfpga.train.jets import CLASS_NAMES

    files = []
    for name in CLASS_NAMES:
        found = sorted(folder.glob(f"shard-c?{name}-k*.h5"))[:per_class]
        if len(found) < per_class:
            raise SystemExit(f"{folder}: {len(found)} shards of class {name}, {per_class} wanted")
        files.extend(found)
    sample = concatenate_samples([load_sample(path) for path in files], str(folder))
    return sample.constituents, sample.features, sample.labels, sample.jet_pt


def _cnn(filters: tuple[int, ...], dense: int, extra: int = 0) -> Any:
    import tensorflow as tf

    layers = tf.keras.layers

    def build(shape: tuple[int, ...]) -> Any:
        x = image = layers.Input(shape)
        for n in filters:
            regularizer = tf.keras.regularizers.l2(1e-5)
            x = layers.Conv2D(n, 3, activation="relu", kernel_regularizer=regularizer)(x)
            x = layers.MaxPooling2D(2)(x)
        x = layers.Flatten()(x)
        inputs = [image]
        if extra:
            inputs.append(layers.Input((extra,)))
            x = layers.Concatenate()([x, inputs[1]])
        x = layers.Dense(dense, activation="relu")(x)
        return tf.keras.Model(inputs, layers.Dense(5, activation="softmax")(x))

    return build


def _mlp(shape: tuple[int, ...]) -> Any:
    import tensorflow as tf

    x = inputs = tf.keras.layers.Input(shape)
    for units in (64, 32, 32):
        x = tf.keras.layers.Dense(units, activation="relu")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(5, activation="softmax")(x))


def fit(name: str, build: Any, x: Any, y: np.ndarray, parts: dict, epochs: int) -> dict:
    """Train ``build``'s model on the training part (``x`` an array or a list of arrays, one per
    input); its test accuracy and cost."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(1)
    arrays = x if isinstance(x, list) else [x]
    model = build(arrays[0].shape[1:])
    x = _Rows(arrays)
    model.compile(tf.keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    callbacks = [
        tf.keras.callbacks.EarlyStopping(patience=6, restore_best_weights=True),
        tf.keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=3),
    ]
    train, val, test = parts["train"], parts["val"], parts["test"]
    start = time.perf_counter()
    history = model.fit(
        x[train], y[train], validation_data=(x[val], y[val]), epochs=epochs,
        batch_size=1024, verbose=0, callbacks=callbacks,
    )  # fmt: skip
    predicted = model.predict(x[test], batch_size=4096, verbose=0).argmax(axis=1)
    return {
        "variant": name,
        "accuracy": round(float((predicted == y[test]).mean()), 4),
        "epochs": len(history.history["loss"]),
        "seconds": round(time.perf_counter() - start),
        "parameters": model.count_params(),
        "test_jets": len(test),
    }


class _Rows:
    """``x[index]`` of one or several inputs: the indexed rows of each."""

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self.arrays = arrays

    def __getitem__(self, index: np.ndarray) -> Any:
        rows = [array[index] for array in self.arrays]
        return rows if len(rows) > 1 else rows[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a shard folder")
    parser.add_argument("--shards-per-class", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--variant", action="append", help="see the module docstring")
    parser.add_argument("--out", type=Path, default=None, help="append the JSON lines here")
    args = parser.parse_args(argv)

    from hepfpga.train.images import jet_images
    from hepfpga.train.jets import FEATURE_NAMES

    constituents, features, labels, jet_pt = load(args.data, args.shards_per_class)
    order = np.random.default_rng(0).permutation(len(labels))
    n = len(labels)
    parts = {
        "train": order[: int(0.6 * n)],
        "val": order[int(0.6 * n) : int(0.8 * n)],
        "test": order[int(0.8 * n) :],
    }
    for variant in args.variant or DEFAULT_VARIANTS:
        if variant == "mlp":
            train = features[parts["train"]]
            x = (features - train.mean(axis=0)) / (train.std(axis=0) + 1e-9)
            row = fit(variant, _mlp, x, labels, parts, args.epochs)
        else:
            pixels, extent, frame, values, filters, dense, *extra = variant.split(":")
            scale = jet_pt / 1000.0 if frame == "alignpt" else None  # model.image_pt_reference
            x = jet_images(
                constituents, int(pixels), float(extent),
                align=frame in ("align", "alignpt"), angle_scale=scale,
            )  # fmt: skip
            if values in ("pt", "sqrtpt"):
                x = x * (jet_pt / 1000.0).astype(np.float32)[:, None, None, None]
            if values in ("sqrt", "sqrtpt"):
                x = np.sqrt(x)
            inputs = [x]
            if extra:  # standardised features beside the image, e.g. ':mass_mmdt'
                columns = [FEATURE_NAMES.index(name) for name in extra[0].split(",")]
                train = features[parts["train"]][:, columns]
                scaled = (features[:, columns] - train.mean(axis=0)) / train.std(axis=0)
                inputs.append(scaled.astype(np.float32))
            build = _cnn(tuple(int(f) for f in filters.split(",")), int(dense), len(inputs) - 1)
            row = fit(variant, build, inputs, labels, parts, args.epochs)
        line = json.dumps(row)
        print(line, flush=True)
        if args.out is not None:
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
