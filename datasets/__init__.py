"""Datasets: the SPIN-format annotation reader with the training augmentation (`base_dataset`), the
mixture of training sets (`mixed_dataset`), resumable sampling (`sampling`), COCO keypoints
(`coco_keypoint_dataset`), synthetic labelled images (`synthetic`) and person crops for inference
(`inference`).

May import: `core.constants`, `core.path_config`, `core.cfgs`'s builders, `models` (the body model, for
synthetic data) and `utils`. Never the application modules of `core`, a script or a shared config.
"""
