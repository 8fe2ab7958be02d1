"""Evaluation as a library: the benchmark protocol (`protocol`: benchmarks, ground truth, body models,
the model under test, the protocol in words), the metrics (`metrics`: MPJPE, PA-MPJPE, PVE, PCK/AUC,
segmentation scores), the evaluators and their loop (`evaluator`) and the COCO keypoint evaluation
(`coco`). eval.py, eval_coco.py and the trainer's validation all use these.

May import: `core.constants`, `core.path_config`, `models`, `datasets`, `utils` and other `core`
application modules. Never a script, never a shared config: options arrive as arguments.
"""
