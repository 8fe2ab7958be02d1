"""The video pipeline's model-free pieces: reading and writing frames (`io`), finding people (`detection`),
following them over frames (`tracking`) and smoothing their per-frame values over time (`smoothing`).

May import: the standard library, numpy/torch/OpenCV and other third-party packages, `core.constants`,
top-level `utils` modules (such as `utils.geometry`) and modules of this package. Never `models`,
`datasets`, the rest of `core`, the other `utils` subpackages or a script: whatever needs a network or a
dataset lives in `core.inference`, which calls these pieces.
"""
