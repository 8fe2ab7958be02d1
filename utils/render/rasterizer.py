"""A vectorised z-buffer triangle rasteriser in pure PyTorch (CPU and GPU, no compiled extension).

Conventions
-----------
- Image coordinates are continuous pixel coordinates: x to the right, y down, the pixel in row ``i`` and
  column ``j`` covers ``[j, j+1) x [i, i+1)`` and is sampled at its centre ``(j + 0.5, i + 0.5)``. A
  pinhole camera with principal point ``(W/2, H/2)`` therefore projects the optical axis onto the middle
  of the image.
- Each vertex carries its camera-space depth ``z`` (> 0, nearer is smaller). Faces with a vertex at
  ``z <= near`` are dropped whole (no clipping); this never matters for meshes in front of the camera.
- A pixel is covered by a face when its centre lies inside or on the edge of the projected triangle.
  Among the faces covering a pixel the one with the smallest interpolated depth wins (a real per-pixel
  z-buffer, independent of face order). Exact depth ties go to the face with the smallest index.
- Barycentric coordinates are perspective-correct: ``1/z`` is interpolated linearly in screen space.
- Culling: with ``cull_backfaces=True`` faces whose projected winding is clockwise on screen in these
  y-down coordinates are dropped. For a mesh whose faces are counter-clockwise seen from outside (SMPL,
  trimesh, OpenGL convention) given in an OpenCV camera frame (x right, y down, z forward), those are
  exactly the faces turned away from the camera.

How it works: every face's pixel bounding box is enumerated as (face, pixel) candidates with
``repeat_interleave`` (no Python loop over faces or pixels); candidates outside the triangle are
dropped, the depth buffer is updated with ``scatter_reduce(amin)`` and the winning face per pixel is
chosen among the candidates whose depth equals the buffer. Faces are processed in chunks holding at
most ``max_candidates`` candidates, so memory stays bounded for full-HD frames and many people.
Visibility is not differentiable; the returned barycentrics and depth are recomputed from the winning
faces, so gradients flow from them to ``verts_px``.
"""
from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

# Default bound on the number of (face, pixel) candidates evaluated at once. Each takes about 200 bytes of
# temporary memory, so this bounds the working memory to about 50 MB on top of the per-pixel buffers;
# chunks of this size were also the fastest on CPU (cache friendly).
DEFAULT_MAX_CANDIDATES = 250_000


def _edge_weights(p: torch.Tensor, tri: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Unnormalised screen-space barycentric weights of points in triangles.

    Args:
        p: (N, 2) pixel positions.
        tri: (N, 3, 2) projected triangle corners.

    Returns:
        ``(w (N, 3), area (N,))`` with ``w[:, k]`` the signed area of the sub-triangle opposite corner k and
        ``area`` the signed area of the triangle (twice the geometric area, sign = winding), so that
        ``w / area`` are the screen-space barycentrics.
    """
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]

    def cross(o: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return (u[:, 0] - o[:, 0]) * (v[:, 1] - o[:, 1]) - (u[:, 1] - o[:, 1]) * (v[:, 0] - o[:, 0])

    w0 = cross(b, c, p)
    w1 = cross(c, a, p)
    w2 = cross(a, b, p)
    area = cross(a, b, c)
    return torch.stack([w0, w1, w2], dim=1), area


def _perspective_bary(
    w: torch.Tensor, area: torch.Tensor, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Perspective-correct barycentrics and depth from screen-space weights.

    Args:
        w: (N, 3) unnormalised screen weights (from `_edge_weights`).
        area: (N,) signed triangle area.
        z: (N, 3) camera depth of the corners.

    Returns:
        ``(bary (N, 3), depth (N,))``.
    """
    l_screen = w / area[:, None]
    l_over_z = l_screen / z
    inv_depth = l_over_z.sum(dim=1)
    depth = 1.0 / inv_depth
    return l_over_z * depth[:, None], depth


def _face_planes(tri: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen-space planes of the barycentrics and of the inverse depth of each face.

    Args:
        tri: (F, 3, 3) face corners as (x_px, y_px, z).
        ref: (F, 2) reference pixel position per face; the planes are expressed relative to it, which keeps
            float32 round-off small on large images.

    Returns:
        ``(plane (F, 4, 3), area (F,))``: at pixel position ``ref + (dx, dy)``, ``plane[f, k, 0] * dx +
        plane[f, k, 1] * dy + plane[f, k, 2]`` is the screen barycentric of corner k (k < 3) and the inverse
        depth 1/z (k = 3), and ``area`` is twice the signed screen area (its sign is the winding).
    """
    x, y, z = tri[..., 0] - ref[:, :1], tri[..., 1] - ref[:, 1:], tri[..., 2]
    # Edge function of the edge opposite corner k: (x_j - x_i) * (py - y_i) - (y_j - y_i) * (px - x_i).
    i_idx, j_idx = [1, 2, 0], [2, 0, 1]
    xi, yi, xj, yj = x[:, i_idx], y[:, i_idx], x[:, j_idx], y[:, j_idx]
    coef_x = -(yj - yi)
    coef_y = xj - xi
    coef_c = (yj - yi) * xi - (xj - xi) * yi
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (y[:, 1] - y[:, 0]) * (x[:, 2] - x[:, 0])
    safe_area = torch.where(area.abs() > 1e-12, area, torch.ones_like(area))
    bary_plane = torch.stack([coef_x, coef_y, coef_c], dim=2) / safe_area[:, None, None]
    inv_z_plane = (bary_plane / z[..., None]).sum(dim=1, keepdim=True)
    return torch.cat([bary_plane, inv_z_plane], dim=1), area


def rasterize(
    verts_px: torch.Tensor,
    faces: torch.Tensor,
    height: int,
    width: int,
    cull_backfaces: bool = False,
    near: float = 1e-6,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rasterise a batch of triangle meshes that share one face list, with a per-pixel z-buffer.

    Args:
        verts_px: (B, V, 3) vertices as ``(x_px, y_px, z)``: pixel coordinates (x right, y down, pixel
            centres at integer + 0.5) and camera-space depth z (> 0, nearer is smaller).
        faces: (F, 3) long vertex indices shared by the batch.
        height: image height H in pixels.
        width: image width W in pixels.
        cull_backfaces: drop faces that are clockwise on screen (turned away from the camera for meshes
            wound counter-clockwise seen from outside, such as SMPL).
        near: faces with any vertex at ``z <= near`` are dropped.
        max_candidates: bound on the (face, pixel) candidates processed at once (memory control).

    Returns:
        ``(face_idx, bary, depth)``:
        face_idx: (B, H, W) long, index into ``faces`` of the visible face, -1 for background.
        bary: (B, H, W, 3) perspective-correct barycentric coordinates of the pixel centre in the visible
        face (0 for background).
        depth: (B, H, W) camera depth of the visible surface, ``+inf`` for background.

    Raises:
        ValueError: on badly shaped inputs.
    """
    if verts_px.dim() != 3 or verts_px.shape[-1] != 3:
        raise ValueError(f'verts_px must be (B, V, 3) with (x_px, y_px, z); got {tuple(verts_px.shape)}')
    if faces.dim() != 2 or faces.shape[-1] != 3:
        raise ValueError(f'faces must be (F, 3) vertex indices; got {tuple(faces.shape)}')
    if height <= 0 or width <= 0:
        raise ValueError(f'image size must be positive, got height={height} width={width}')
    device = verts_px.device
    batch_size = verts_px.shape[0]
    faces = faces.to(device=device, dtype=torch.long)
    num_faces = faces.shape[0]
    num_pix = batch_size * height * width

    # The z-buffer holds inverse depth (larger = nearer, 0 = background): it is linear in screen space.
    inv_zbuf = torch.zeros(num_pix, device=device, dtype=verts_px.dtype)
    face_buf = torch.full((num_pix,), -1, device=device, dtype=torch.long)

    with torch.no_grad():
        tri = verts_px.detach()[:, faces].reshape(batch_size * num_faces, 3, 3)
        xy = tri[..., :2]
        # Pixel range whose centres fall inside each face's bounding box, clamped to the image.
        x0 = torch.ceil(xy[..., 0].amin(dim=1) - 0.5).clamp(min=0)
        x1 = torch.floor(xy[..., 0].amax(dim=1) - 0.5).clamp(max=width - 1)
        y0 = torch.ceil(xy[..., 1].amin(dim=1) - 0.5).clamp(min=0)
        y1 = torch.floor(xy[..., 1].amax(dim=1) - 0.5).clamp(max=height - 1)
        area = (xy[:, 1, 0] - xy[:, 0, 0]) * (xy[:, 2, 1] - xy[:, 0, 1]) - (xy[:, 1, 1] - xy[:, 0, 1]) * (
            xy[:, 2, 0] - xy[:, 0, 0]
        )
        keep = (x1 >= x0) & (y1 >= y0) & (tri[..., 2].amin(dim=1) > near) & (area.abs() > 1e-12)
        keep &= torch.isfinite(tri).all(dim=2).all(dim=1)
        if cull_backfaces:
            keep &= area < 0
        kept = torch.nonzero(keep).squeeze(1)
        x0, y0 = x0[kept], y0[kept]
        box_w = (x1[kept] - x0 + 1).long()
        counts = box_w * (y1[kept] - y0 + 1).long()
        # Per kept face: the integer data needed to enumerate its pixels, and its 4 screen-space planes.
        face_int = torch.stack(
            [x0.long(), y0.long(), box_w, torch.div(kept, num_faces, rounding_mode='floor'), kept], dim=1
        )
        face_plane, _ = _face_planes(tri[kept], torch.stack([x0, y0], dim=1) + 0.5)

        # Split the kept faces into chunks of at most max_candidates candidates (a face is never split).
        if kept.numel() > 0:
            ends = torch.cumsum(counts, dim=0)
            chunk_id = torch.div(ends - counts, max_candidates, rounding_mode='floor')
            bounds = (torch.nonzero(chunk_id[1:] != chunk_id[:-1]).squeeze(1) + 1).tolist()
            starts, stops = [0] + bounds, bounds + [kept.numel()]
        else:
            starts, stops = [], []

        for start, stop in zip(starts, stops):
            cnt = counts[start:stop]
            num_cand = int(ends[stop - 1] - (ends[start] - counts[start]))
            cand_int = torch.repeat_interleave(face_int[start:stop], cnt, dim=0, output_size=num_cand)
            first = torch.repeat_interleave(torch.cumsum(cnt, dim=0) - cnt, cnt, output_size=num_cand)
            local = torch.arange(num_cand, device=device) - first
            row = torch.div(local, cand_int[:, 2], rounding_mode='floor')
            col = local - row * cand_int[:, 2]
            px = cand_int[:, 0] + col
            py = cand_int[:, 1] + row
            cand_plane = torch.repeat_interleave(face_plane[start:stop], cnt, dim=0, output_size=num_cand)
            # Screen barycentrics l0..l2 and inverse depth at the pixel centres: planes a*dx + b*dy + c.
            vals = torch.addcmul(
                torch.addcmul(cand_plane[..., 2], cand_plane[..., 0], col.to(tri.dtype)[:, None]),
                cand_plane[..., 1],
                row.to(tri.dtype)[:, None],
            )
            # Inside test with a tiny tolerance so that edges shared by two faces leave no cracks.
            inside = torch.nonzero((vals[:, :3] >= -1e-6).all(dim=1)).squeeze(1)
            if inside.numel() == 0:
                continue
            pix = cand_int[:, 3] * (height * width) + py * width + px
            pix_face = torch.stack([pix, cand_int[:, 4]], dim=1)[inside]
            pix = pix_face[:, 0]
            cand_inv_z = vals[inside, 3]
            face_in_mesh = pix_face[:, 1] - torch.div(pix, height * width, rounding_mode='floor') * num_faces
            old_inv_z = inv_zbuf[pix]
            inv_zbuf.scatter_reduce_(0, pix, cand_inv_z, reduce='amax')
            # A candidate wins if it is the new nearest and strictly nearer than earlier chunks' best, so
            # depth ties go to the smallest face index (chunks follow face order).
            winner = (cand_inv_z >= inv_zbuf[pix]) & (cand_inv_z > old_inv_z)
            win_pix = pix[winner]
            face_buf[win_pix] = num_faces  # reset the pixels this chunk wins, then keep the smallest face
            face_buf.scatter_reduce_(0, win_pix, face_in_mesh[winner], reduce='amin')

    face_idx = face_buf.view(batch_size, height, width)
    bary = torch.zeros(num_pix, 3, device=device, dtype=verts_px.dtype)
    depth = torch.full((num_pix,), float('inf'), device=device, dtype=verts_px.dtype)
    covered = torch.nonzero(face_buf >= 0).squeeze(1)
    if covered.numel() > 0:
        b = torch.div(covered, height * width, rounding_mode='floor')
        rem = covered - b * height * width
        centre = torch.stack([rem % width, torch.div(rem, width, rounding_mode='floor')], dim=1)
        centre = centre.to(verts_px.dtype) + 0.5
        vid = faces[face_buf[covered]]  # (N, 3)
        corners = verts_px[b[:, None], vid]  # (N, 3, 3)
        w, tri_area = _edge_weights(centre, corners[..., :2])
        pix_bary, pix_depth = _perspective_bary(w, tri_area, corners[..., 2])
        bary = bary.index_put((covered,), pix_bary)
        depth = depth.index_put((covered,), pix_depth)
    return face_idx, bary.view(batch_size, height, width, 3), depth.view(batch_size, height, width)
