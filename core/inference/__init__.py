"""Inference with a trained network: the predictor (`predictor`: checkpoint in; image or crops in; people
with meshes, joints and cameras out) and live mode (`live`: frames processed as they arrive).

May import: everything below the application layer (`core.constants`, `core.path_config`, `core.cfgs`'s
config builders, `models`, `datasets`, `utils`) and other `core` application modules. Never a script
(demo.py, eval.py, train.py, tools/, bench/), never a shared config: options arrive as arguments.
"""
