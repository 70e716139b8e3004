"""hepfpga.train: jet data (generation, features, loading, images), float models, fitting and
evaluation.

Pythia/fastjet generation lives in :mod:`hepfpga.train.generate` and needs the ``datagen``
extra; it is not imported here.
"""

from hepfpga.train.architectures import (
    ARCHITECTURES,
    Architecture,
    build_model,
    register_architecture,
)
from hepfpga.train.dataset import FeatureScaler, Split, split_sample, stratified_subsample
from hepfpga.train.evaluate import ClassifierMetrics, evaluate_classifier, plot_roc
from hepfpga.train.fit import OPTIMIZERS, SCHEDULES, FitResult, fit_classifier
from hepfpga.train.images import jet_images
from hepfpga.train.io import builtin_sample_path, load_builtin_sample, load_sample, save_sample
from hepfpga.train.jets import CLASS_NAMES, FEATURE_NAMES, JetSample

__all__ = [
    "ARCHITECTURES",
    "CLASS_NAMES",
    "FEATURE_NAMES",
    "OPTIMIZERS",
    "SCHEDULES",
    "Architecture",
    "ClassifierMetrics",
    "FeatureScaler",
    "FitResult",
    "JetSample",
    "Split",
    "build_model",
    "builtin_sample_path",
    "evaluate_classifier",
    "fit_classifier",
    "jet_images",
    "load_builtin_sample",
    "load_sample",
    "plot_roc",
    "register_architecture",
    "save_sample",
    "split_sample",
    "stratified_subsample",
]
