"""Sizes, SMPL's joint tree, and how anny's bones, landmarks and phenotypes map onto the stand-in.
"""
from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger('make_standin_body')


NUM_VERTS = 6890
NUM_FACES = 13776
NUM_DP_FACES = 13774
NUM_DP_VERTS = 7829
DOWNSAMPLED_SIZES = (1723, 431)
NUM_BETAS = 10
PELVIS_REST = np.array([0.0, -0.23, 0.0])  # SMPL's rest pelvis sits about 0.23 m below the origin

SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21])

# SMPL joint <- anny bone head.
JOINT_FROM_BONE = [
    'root', 'upperleg01.L', 'upperleg01.R', 'spine03', 'lowerleg01.L', 'lowerleg01.R', 'spine02',
    'foot.L', 'foot.R', 'spine01', 'toe3-1.L', 'toe3-1.R', 'neck01', 'clavicle.L', 'clavicle.R', 'head',
    'upperarm01.L', 'upperarm01.R', 'lowerarm01.L', 'lowerarm01.R', 'wrist.L', 'wrist.R',
    'finger3-1.L', 'finger3-1.R',
]

# SMPL vertex indices used as landmarks by the 49-joint set (smplx's 'smplh' vertex ids).
LANDMARK_VERTS = {
    'nose': 332, 'right_eye': 6260, 'left_eye': 2800, 'right_ear': 4071, 'left_ear': 583,
    'left_big_toe': 3216, 'left_small_toe': 3226, 'left_heel': 3387,
    'right_big_toe': 6617, 'right_small_toe': 6624, 'right_heel': 6787,
    'left_thumb': 2746, 'left_index': 2319, 'left_middle': 2445, 'left_ring': 2556, 'left_pinky': 2673,
    'right_thumb': 6191, 'right_index': 5782, 'right_middle': 5905, 'right_ring': 6016, 'right_pinky': 6133,
}
FINGER_OF = {'thumb': 1, 'index': 2, 'middle': 3, 'ring': 4, 'pinky': 5}

# Adult phenotype ranges sampled for the shape space (anny's parameters live in [0, 1]; age 0.5 is a
# teenager and ages above about 0.62 are adults; these height values give about 1.58-1.97 m for men and
# 1.44-1.84 m for women).
PHENOTYPE_RANGES = {
    'age': (0.62, 0.95), 'muscle': (0.0, 1.0), 'weight': (0.0, 1.0),
    'height': (0.2, 0.55), 'proportions': (0.25, 0.75),
}
GENDER_VALUE = {'neutral': None, 'male': 0.0, 'female': 1.0}  # anny: 0 is the male anchor, 1 the female one

# DensePose's 24 surface parts (1-based): 1/2 torso back/front, 3 right hand, 4 left hand, 5 left foot,
# 6 right foot, 7/9 right upper leg back/front, 8/10 left upper leg back/front, 11/13 right lower leg
# back/front, 12/14 left lower leg back/front, 15/17 left upper arm back/front, 16/18 right upper arm
# back/front, 19/21 left lower arm back/front, 20/22 right lower arm back/front, 23/24 head right/left.
SEGMENT_GROUP = {0: 'torso', 3: 'torso', 6: 'torso', 9: 'torso', 13: 'torso', 14: 'torso',
                 12: 'head', 15: 'head',
                 1: 'upper_leg_l', 2: 'upper_leg_r', 4: 'lower_leg_l', 5: 'lower_leg_r',
                 7: 'foot_l', 8: 'foot_r', 10: 'foot_l', 11: 'foot_r',
                 16: 'upper_arm_l', 17: 'upper_arm_r', 18: 'lower_arm_l', 19: 'lower_arm_r',
                 20: 'hand_l', 21: 'hand_r', 22: 'hand_l', 23: 'hand_r'}
LIMB_PARTS = {  # group: (back part, front part, axis start joint, axis end joint, left side)
    'upper_leg_r': (7, 9, 2, 5, False), 'upper_leg_l': (8, 10, 1, 4, True),
    'lower_leg_r': (11, 13, 5, 8, False), 'lower_leg_l': (12, 14, 4, 7, True),
    'upper_arm_l': (15, 17, 16, 18, True), 'upper_arm_r': (16, 18, 17, 19, False),
    'lower_arm_l': (19, 21, 18, 20, True), 'lower_arm_r': (20, 22, 19, 21, False),
}


def segment_of_bone(label: str) -> int:
    """SMPL segment (0..23) whose skinning weight collects anny bone ``label``'s weight."""
    side_l = label.endswith('.L')
    name = label.split('.')[0]

    def pick(left: int, right: int) -> int:
        return left if side_l else right
    if name in ('root', 'pelvis', 'spine05', 'spine04'):
        return 0
    if name == 'spine03':
        return 3
    if name == 'spine02':
        return 6
    if name == 'spine01':
        return 9
    if name.startswith('neck'):
        return 12
    if name in ('head', 'eye') or name.startswith('eye'):
        return 15
    if name.startswith('upperleg'):
        return pick(1, 2)
    if name.startswith('lowerleg'):
        return pick(4, 5)
    if name == 'foot':
        return pick(7, 8)
    if name.startswith('toe'):
        return pick(10, 11)
    if name in ('clavicle', 'shoulder01'):
        return pick(13, 14)
    if name.startswith('upperarm'):
        return pick(16, 17)
    if name.startswith('lowerarm'):
        return pick(18, 19)
    if name == 'wrist' or name.startswith('metacarpal'):
        return pick(20, 21)
    if name.startswith('finger'):
        return pick(22, 23)
    raise ValueError(f'no SMPL segment for anny bone {label!r}')
