"""Rotation, projection and camera-conversion maths of utils/geometry.py."""
import torch

from utils import geometry as G


def test_axis_angle_round_trip_and_orthonormality():
    torch.manual_seed(0)
    pose_aa = torch.randn(500, 3)
    pose_aa = pose_aa / pose_aa.norm(dim=1, keepdim=True) * torch.rand(500, 1) * 3.0
    rotmat = G.batch_rodrigues(pose_aa)
    eye = torch.eye(3).expand(500, 3, 3)
    assert torch.allclose(rotmat @ rotmat.transpose(1, 2), eye, atol=1e-5)
    assert torch.allclose(torch.det(rotmat), torch.ones(500), atol=1e-5)
    back = G.rotation_matrix_to_angle_axis(rotmat)
    assert torch.allclose(back, pose_aa, atol=1e-4)


def test_rot6d_gives_rotations_and_inverts():
    torch.manual_seed(1)
    rotmat = G.rot6d_to_rotmat(torch.randn(8, 24 * 6))
    assert rotmat.shape == (8 * 24, 3, 3)
    assert torch.allclose(torch.det(rotmat), torch.ones(len(rotmat)), atol=1e-5)
    assert torch.allclose(G.rot6d_to_rotmat(G.rotmat_to_rot6d(rotmat)), rotmat, atol=1e-6)
    # The 6D layout is row-major [R00, R01, R10, R11, R20, R21].
    assert torch.allclose(G.rotmat_to_rot6d(rotmat)[0], rotmat[0, :, :2].reshape(-1))


def test_rodrigues_gradient():
    pose_aa = (torch.randn(4, 3, dtype=torch.float64) * 0.7).requires_grad_()
    assert torch.autograd.gradcheck(G.batch_rodrigues, (pose_aa,))


def test_weak_projection_matches_scaled_orthographic_for_flat_points():
    cam = torch.tensor([[0.9, 0.1, -0.2]])
    points = torch.tensor([[[0.3, -0.4, 0.0], [0.0, 0.0, 0.0]]])
    expected = cam[:, :1, None] * (points[..., :2] + cam[:, None, 1:])
    assert torch.allclose(G.projection(points, cam), expected, atol=1e-5)


def test_full_image_camera_places_the_crop_projection_in_the_image():
    torch.manual_seed(2)
    # The two cameras agree exactly on the body's principal plane (z = 0), as in the original.
    points = torch.randn(3, 30, 3) * 0.3 * torch.tensor([1.0, 1.0, 0.0])
    cam = torch.tensor([[0.8, 0.05, 0.1], [1.1, -0.1, 0.0], [0.6, 0.0, 0.2]])
    center = torch.tensor([[600.0, 300.0], [200.0, 500.0], [960.0, 540.0]])
    size = torch.tensor([400.0, 250.0, 800.0])
    width, height = 1920, 1080
    # Crop projection mapped to image pixels.
    crop_norm = G.projection(points, cam)
    expected = center[:, None] + crop_norm * size[:, None, None] / 2
    cam_t = G.crop_cam_to_full_cam_t(cam, center, size, width, height)
    px = G.perspective_projection(points, torch.eye(3).expand(3, 3, 3), cam_t, 5000.0,
                                  torch.tensor([[width / 2, height / 2]]).expand(3, 2))
    assert torch.allclose(px, expected, atol=1e-2)
    # The original's [sx, sy, tx, ty] camera describes the same placement at the principal plane.
    orig = G.convert_crop_cam_to_orig_img(cam, torch.cat([center, size[:, None]], 1), width, height)
    x_norm = orig[:, None, :1] * (points[..., :1] + orig[:, None, 2:3])
    flat = G.perspective_projection(points * torch.tensor([1, 1, 0.0]), torch.eye(3).expand(3, 3, 3), cam_t, 5000.0,
                                    torch.tensor([[width / 2, height / 2]]).expand(3, 2))
    assert torch.allclose(x_norm[..., 0], (flat[..., 0] - width / 2) / (width / 2), atol=1e-4)


def test_estimate_translation_recovers_the_camera():
    torch.manual_seed(3)
    joints = torch.randn(2, 49, 3) * 0.3
    cam_t = torch.tensor([[0.1, -0.2, 20.0], [0.0, 0.3, 35.0]])
    px = G.perspective_projection(joints, torch.eye(3).expand(2, 3, 3), cam_t, 5000.0, torch.full((2, 2), 112.0))
    kp = torch.cat([px, torch.ones(2, 49, 1)], dim=-1)
    assert torch.allclose(G.estimate_translation(joints, kp), cam_t, atol=1e-3)
