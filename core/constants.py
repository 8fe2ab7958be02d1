"""Constants shared by the model, the datasets and the evaluation: camera, image and joint tables.

Pure data, no imports of project code. The joint tables follow the original PyMAF/SPIN conventions
exactly, because the released checkpoint and the evaluation protocols depend on them.
"""
from __future__ import annotations

# Focal length (px) of the virtual perspective camera used to turn the weak-perspective crop camera into
# a translation, and the side (px) of the square crop the network sees.
FOCAL_LENGTH = 5000.0
IMG_RES = 224

# ImageNet normalisation applied to RGB images scaled to [0, 1].
IMG_NORM_MEAN = [0.485, 0.456, 0.406]
IMG_NORM_STD = [0.229, 0.224, 0.225]

# The 24 SMPL kinematic joints, in SMPL order, and the parent of each (-1 for the root).
SMPL_JOINT_NAMES = [
    'pelvis', 'left_hip', 'right_hip', 'spine1', 'left_knee', 'right_knee', 'spine2', 'left_ankle',
    'right_ankle', 'spine3', 'left_foot', 'right_foot', 'neck', 'left_collar', 'right_collar', 'head',
    'left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
    'left_hand', 'right_hand',
]
SMPL_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]

# SMPL vertex indices appended after the 24 SMPL joints (the 'smplh' vertex joints of smplx): face
# landmarks, feet and finger tips, in this order.
SMPL_VERTEX_JOINT_IDS = [
    332,   # nose
    6260,  # right eye
    2800,  # left eye
    4071,  # right ear
    583,   # left ear
    3216,  # left big toe
    3226,  # left small toe
    3387,  # left heel
    6617,  # right big toe
    6624,  # right small toe
    6787,  # right heel
    2746, 2319, 2445, 2556, 2673,  # left thumb, index, middle, ring, pinky tips
    6191, 5782, 5905, 6016, 6133,  # right thumb, index, middle, ring, pinky tips
]

# The 49 joints the model outputs: 25 OpenPose BODY_25 joints, then the 24 "ground-truth" joints.
JOINT_NAMES = [
    'OP Nose', 'OP Neck', 'OP RShoulder', 'OP RElbow', 'OP RWrist', 'OP LShoulder', 'OP LElbow',
    'OP LWrist', 'OP MidHip', 'OP RHip', 'OP RKnee', 'OP RAnkle', 'OP LHip', 'OP LKnee', 'OP LAnkle',
    'OP REye', 'OP LEye', 'OP REar', 'OP LEar', 'OP LBigToe', 'OP LSmallToe', 'OP LHeel', 'OP RBigToe',
    'OP RSmallToe', 'OP RHeel',
    'Right Ankle', 'Right Knee', 'Right Hip', 'Left Hip', 'Left Knee', 'Left Ankle', 'Right Wrist',
    'Right Elbow', 'Right Shoulder', 'Left Shoulder', 'Left Elbow', 'Left Wrist', 'Neck (LSP)',
    'Top of Head (LSP)', 'Pelvis (MPII)', 'Thorax (MPII)', 'Spine (H36M)', 'Jaw (H36M)', 'Head (H36M)',
    'Nose', 'Left Eye', 'Right Eye', 'Left Ear', 'Right Ear',
]

# Index of each of the 49 joints in the 54-joint concatenation [24 SMPL joints, 21 vertex joints,
# 9 J_regressor_extra joints]. The extra rows are [R hip, L hip, neck (LSP), head top (LSP),
# pelvis (MPII), thorax (MPII), spine (H36M), jaw (H36M), head (H36M)].
JOINT_MAP = [
    24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34,
    8, 5, 45, 46, 4, 7, 21, 19, 17, 16, 18, 20, 47, 48, 49, 50, 51, 52, 53, 24, 26, 25, 28, 27,
]

# Selections of the 17 H36M-regressor joints and of the 24 ground-truth joints.
H36M_TO_J17 = [6, 5, 4, 1, 2, 3, 16, 15, 14, 11, 12, 13, 8, 10, 0, 7, 9]
H36M_TO_J14 = H36M_TO_J17[:14]
J24_TO_J17 = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 18, 14, 16, 17]
J24_TO_J14 = J24_TO_J17[:14]
J24_TO_J19 = J24_TO_J17[:14] + [19, 20, 21, 22, 23]
# COCO order: nose, l/r eye, l/r ear, l/r shoulder, l/r elbow, l/r wrist, l/r hip, l/r knee, l/r ankle.
J24_TO_JCOCO = [19, 20, 21, 22, 23, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]

# Left/right permutations used when an image is mirrored.
SMPL_JOINTS_FLIP_PERM = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]
SMPL_POSE_FLIP_PERM = [3 * j + k for j in SMPL_JOINTS_FLIP_PERM for k in range(3)]
J24_FLIP_PERM = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13, 14, 15, 16, 17, 18, 19, 21, 20, 23, 22]
_OP_FLIP_PERM = [0, 1, 5, 6, 7, 2, 3, 4, 8, 12, 13, 14, 9, 10, 11, 16, 15, 18, 17, 22, 23, 24, 19, 20, 21]
J49_FLIP_PERM = _OP_FLIP_PERM + [25 + i for i in J24_FLIP_PERM]
SMPL_J49_FLIP_PERM = _OP_FLIP_PERM + [25 + i for i in SMPL_JOINTS_FLIP_PERM]
