"""The version of hepfpga (as in ``pyproject.toml``), in the core so that every layer may read
it; the public facade re-exports it as ``hepfpga.__version__``."""

__version__ = "0.1.0"
