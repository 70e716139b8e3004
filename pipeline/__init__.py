"""The run layer: the runner and its stage list, the run config composing the stage
sections, the tasks (one object each), the analysis, emulation and hardware stages, reports and
figures, ``compare``, ``scan`` and ``tune``.

It imports the core and the stages, never the CLI. Import what you need from its modules
(:mod:`hepfpga.pipeline.runner`, :mod:`hepfpga.pipeline.config`, ...); the public facade
:mod:`hepfpga` exposes ``run_pipeline`` and ``load_config`` lazily.
"""
