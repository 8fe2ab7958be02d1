"""The project's core, in two layers.

Base (imported by `models`, `datasets` and `utils`-free of them): `constants` (sizes, joint tables, image
normalisation; may be imported by everything, even `utils`), `path_config` (where the data files are) and
`cfgs` (the yacs config schema and how to build a node; the module-level ``cfg`` is the scripts' node).

Application (may import everything above plus `models`, `datasets` and `utils`): `trainer` and `losses`
(training), `train_options` (the training command line), `inference` (the predictor and live mode) and
`evaluation` (benchmark protocol, metrics and evaluator). Scripts (demo.py, eval.py, train.py, tools/,
bench/) sit on top; nothing under `core/` imports them. See docs/architecture.md.
"""
