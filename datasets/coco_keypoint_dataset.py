"""COCO keypoint evaluation set: SPIN-format crops of the val2014 people plus pycocotools scoring.

Samples (boxes, crops) come from the SPIN annotation file ``coco_2014_val.npz`` through
:class:`BaseDataset`; the COCO ground truth ``annotations/person_keypoints_val2014.json`` is read only
to score predictions. As in the original, every prediction gets keypoint and box score 1, no OKS-NMS is
applied and COCOeval runs over all images of the ground-truth file.
"""
from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict

import numpy as np

from datasets.base_dataset import BaseDataset
from utils.cli import DataFileError

logger = logging.getLogger(__name__)

STAT_NAMES = ['AP', 'Ap .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5', 'AR .75', 'AR (M)', 'AR (L)']


def image_id_from_name(imgname: str) -> int:
    """COCO image id from a file name ending in the 12-digit id, e.g. ``COCO_val2014_000000019667.jpg``."""
    stem = os.path.splitext(os.path.basename(str(imgname)))[0]
    digits = stem.split('_')[-1]
    if not digits.isdigit():
        raise ValueError(f'cannot read a COCO image id from {imgname!r}; expected a name like '
                         'COCO_val2014_000000019667.jpg')
    return int(digits)


def load_coco_gt(annotation_file: str):
    """Load a COCO keypoint annotation file with pycocotools (quietly).

    Raises:
        FileNotFoundError: the file is missing; the message says where it comes from.
    """
    import contextlib
    import io

    from pycocotools.coco import COCO

    if not os.path.isfile(annotation_file):
        raise FileNotFoundError(f'COCO keypoint annotations not found: {annotation_file}\n'
                                'Download annotations_trainval2014.zip from https://cocodataset.org and unpack '
                                'it under the COCO root (annotations/person_keypoints_val2014.json).')
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(annotation_file)
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError) as err:
        raise DataFileError(f'{annotation_file} is not a COCO keypoint annotation file ({type(err).__name__})',
                            'pass person_keypoints_val2014.json from the COCO 2014 annotations') from None


def evaluate_keypoints(coco_gt, keypoints_px: np.ndarray, imgnames: list[str], result_json: str) -> OrderedDict:
    """Score COCO-order keypoints in original-image pixels with COCOeval and write the result JSON.

    Args:
        coco_gt: pycocotools ``COCO`` ground truth.
        keypoints_px: (N, 17, 2) predicted keypoints (COCO joint order), original-image pixels.
        imgnames: N image names (the COCO image id is read from each).
        result_json: path of the detections JSON to write.

    Returns:
        OrderedDict of the ten COCO keypoint statistics (fractions), keyed by :data:`STAT_NAMES`.
    """
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    results = []
    for kp, name in zip(np.asarray(keypoints_px, dtype=np.float64), imgnames):
        flat = np.concatenate([kp[:, :2], np.ones((len(kp), 1))], axis=1).reshape(-1)
        results.append({'image_id': image_id_from_name(name), 'category_id': 1,
                        'keypoints': [float(v) for v in flat], 'score': 1.0})
    if not results:
        raise ValueError('no predictions to evaluate')
    unknown = sorted({r['image_id'] for r in results} - set(coco_gt.getImgIds()))
    if unknown:
        raise DataFileError(f'{len(unknown)} image id(s) of the predictions are not in the COCO ground truth '
                            f'(first: {unknown[:3]})', 'evaluate the annotation file that matches it')
    from utils.cli import atomic_write

    atomic_write(result_json, lambda f: json.dump(results, f), mode='w')
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        coco_dt = coco_gt.loadRes(result_json)
        coco_eval = COCOeval(coco_gt, coco_dt, 'keypoints')
        coco_eval.params.useSegm = None
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    logger.info('COCOeval summary:\n%s', buffer.getvalue())
    return OrderedDict((name, float(coco_eval.stats[i])) for i, name in enumerate(STAT_NAMES))


class COCOKeypointDataset(BaseDataset):
    """The COCO val2014 people of the SPIN annotation file, with the GT file for scoring.

    Args:
        npz_path, img_dir: overrides of the files from ``core.path_config`` (dataset ``coco``, test split).
        annotation_file: COCO keypoint GT (default ``<img_dir>/annotations/person_keypoints_val2014.json``).
    """

    def __init__(self, npz_path: str | None = None, img_dir: str | None = None,
                 annotation_file: str | None = None) -> None:
        super().__init__('coco', is_train=False, npz_path=npz_path, img_dir=img_dir)
        self.annotation_file = annotation_file or os.path.join(self.img_dir, 'annotations',
                                                               'person_keypoints_val2014.json')
        self._coco = None

    @property
    def coco(self):
        """The pycocotools ground truth, loaded on first use."""
        if self._coco is None:
            self._coco = load_coco_gt(self.annotation_file)
        return self._coco

    def evaluate(self, keypoints_px: np.ndarray, imgnames: list[str], result_json: str) -> OrderedDict:
        """Score predictions; see :func:`evaluate_keypoints`."""
        return evaluate_keypoints(self.coco, keypoints_px, imgnames, result_json)
