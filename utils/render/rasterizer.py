"""A vectorised z-buffer triangle rasteriser in pure PyTorch (CPU and GPU, no compiled extension).

Conventions
-----------
- Image coordinates are continuous pixel coordinates: x to the right, y down, the pixel in row ``i`` and
  column ``j`` covers ``[j, j+1) x [i, i+1)`` and is sampled at its centre ``(j + 0.5, i + 0.5)``. A
  pinhole camera with principal point ``(W/2, H/2)`` therefore projects the optical axis onto the middle
  of the image.
- Each vertex carries its camera-space depth ``z`` (> 0, nearer is smaller). Faces with a vertex at
  ``z <= near`` are dropped whole (no clipping); this never matters for meshes in front of the camera.
- A pixel is covered by a face when its centre lies inside or on the edge of the projected triangle
  (screen barycentrics >= -1e-6, so that edges shared by two faces leave no cracks).
  Among the faces covering a pixel the one with the smallest interpolated depth wins (a real per-pixel
  z-buffer, independent of face order); depths are compared in float32, and exact ties go to the face
  with the smallest index.
- Barycentric coordinates are perspective-correct: ``1/z`` is interpolated linearly in screen space.
- Culling: with ``cull_backfaces=True`` faces whose projected winding is clockwise on screen in these
  y-down coordinates are dropped. For a mesh whose faces are counter-clockwise seen from outside (SMPL,
  trimesh, OpenGL convention) given in an OpenCV camera frame (x right, y down, z forward), those are
  exactly the faces turned away from the camera.

How it works (`visible_faces`, no Python loop over faces or pixels): every kept face is cut into the pixel
rows of its bounding box; on each row the run of pixel centres inside the triangle is found from the three
edge equations (a division, then checked exactly at both ends), so that only pixels inside a face are ever
enumerated, with ``repeat_interleave``. Each such (pixel, face) fragment gets one int64 key, the float32
bits of its inverse depth (monotonic for positive floats) above the index of its row run, and one
``scatter_reduce(amax)`` of the keys into a buffer covering only the bounding box of the faces is the
z-buffer and the tie-break at once. Fragments are processed in chunks of at most ``max_candidates``, so
memory stays bounded for full-HD frames and many people. `rasterize` turns the visible faces into
full-image buffers and recomputes the barycentrics and depth of the winning faces only. Visibility is not
differentiable; those barycentrics and depth are, so gradients flow from them to ``verts_px``.
"""
from __future__ import annotations

import logging
from typing import NamedTuple

import torch

logger = logging.getLogger(__name__)

# Default bound on the number of (pixel, face) fragments evaluated at once. Each takes about 80 bytes of
# temporary memory, so this bounds the working memory to about 20 MB on top of the z-buffer.
DEFAULT_MAX_CANDIDATES = 250_000
# Tolerance of the inside test in barycentric units: pixel centres on a shared edge belong to both faces.
INSIDE_EPS = 1e-6
# Fragment keys hold the index of their row run in the low bits (ties go to the smallest index).
_RUN_BITS = 31
_RUN_MASK = (1 << _RUN_BITS) - 1


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


class VisibleFaces(NamedTuple):
    """The nearest face at every covered pixel, one entry per covered pixel (sorted by batch, row, column).

    Attributes:
        batch: (P,) long index of the mesh in the batch.
        y: (P,) long pixel row.
        x: (P,) long pixel column.
        face: (P,) long index into ``faces`` of the visible face.
    """

    batch: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    face: torch.Tensor


def _min3(t: torch.Tensor) -> torch.Tensor:
    """Elementwise minimum of ``t[0], t[1], t[2]`` (faster than a reduction over a short leading dim)."""
    return torch.minimum(torch.minimum(t[0], t[1]), t[2])


def _max3(t: torch.Tensor) -> torch.Tensor:
    """Elementwise maximum of ``t[0], t[1], t[2]``."""
    return torch.maximum(torch.maximum(t[0], t[1]), t[2])


def face_planes(
    x: torch.Tensor, y: torch.Tensor, z: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Screen-space planes of the barycentrics and of the inverse depth of faces.

    Args:
        x, y: (3, K) pixel positions of the corners relative to a reference point per face (small numbers
            keep float32 round-off small on large images).
        z: (3, K) camera depth of the corners.

    Returns:
        ``(a, b, c)``, each (4, K): at ``(dx, dy)`` from the reference point, ``a[k] * dx + b[k] * dy +
        c[k]`` is the screen barycentric of corner k (k < 3) and the inverse depth 1/z (k = 3).
    """
    # Edge function of the edge i -> j opposite corner k: (x_j - x_i) * (py - y_i) - (y_j - y_i) * (px - x_i).
    xi, yi, xj, yj = x[[1, 2, 0]], y[[1, 2, 0]], x[[2, 0, 1]], y[[2, 0, 1]]
    ex, ey = xj - xi, yj - yi
    area = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
    inv_area = 1.0 / torch.where(area.abs() > 1e-12, area, torch.ones_like(area))
    a, b, c = -ey * inv_area, ex * inv_area, (ey * xi - ex * yi) * inv_area
    inv_z = 1.0 / z
    planes = [torch.cat([p, (p * inv_z).sum(dim=0, keepdim=True)]) for p in (a, b, c)]
    return planes[0], planes[1], planes[2]


def _row_runs(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, box_w: torch.Tensor, box_h: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut faces into the rows of their bounding boxes and find the pixels inside the face on each row.

    A pixel at ``(dx, dy)`` from the face's first bounding-box pixel is inside when every screen barycentric
    ``(b[k] * dy + c[k]) + a[k] * dx`` (k < 3, evaluated in this order) is at least ``-INSIDE_EPS``. On a
    row each of these is monotonic in dx, so the inside pixels form one run ``lo <= dx <= hi``. The run
    ends are estimated by dividing, shifted by a quarter pixel so that the estimate is the first (last)
    inside pixel or the one before (after) it, and settled by the exact test at the estimate.

    Args:
        a, b, c: (4, K) planes of the faces (`face_planes`) relative to their first pixel centre.
        box_w: (K,) long bounding-box widths in pixels (>= 1).
        box_h: (K,) long bounding-box heights in pixels (>= 1).

    Returns:
        ``(run_face, dy, lo, count, inv_z_slope, inv_z_offset)``, each (R,): the face (index into the K
        faces) and row of each run, its first column and its length (0 for rows without inside pixels),
        all long, and the inverse-depth plane on that row: ``inv_z = inv_z_slope * dx + inv_z_offset``.
    """
    device, dtype = a.device, a.dtype
    num_runs = int(box_h.sum())
    run_face = torch.repeat_interleave(torch.arange(box_h.shape[0], device=device), box_h, output_size=num_runs)
    first_run = torch.cumsum(box_h, dim=0) - box_h
    dy = torch.arange(num_runs, device=device) - first_run.index_select(0, run_face)
    # Per face and edge: where the barycentric crosses -INSIDE_EPS is a lower bound of the run when it
    # grows to the right, an upper bound when it falls; a constant one bounds nothing unless negative.
    slope = a[:3]
    inv_slope = 1.0 / torch.where(slope == 0, torch.ones_like(slope), slope)
    inf = torch.tensor(float('inf'), device=device, dtype=dtype)
    lower = torch.where(slope > 0, 0.0, -inf)  # added to the crossing: -inf drops it from the max
    upper = torch.where(slope < 0, 0.0, inf)
    face_data = torch.cat([a, b, c, inv_slope, lower, upper, box_w[None].to(dtype)])  # (22, K)
    run_data = face_data.index_select(1, run_face)
    run_slope, run_b, run_c = run_data[0:4], run_data[4:8], run_data[8:12]
    run_inv_slope, run_lower, run_upper, width = run_data[12:15], run_data[15:18], run_data[18:21], run_data[21]
    offset = run_b * dy.to(dtype) + run_c  # (4, R): the planes at dx = 0 on this row
    bary_slope, bary_offset = run_slope[:3], offset[:3]
    crossing = (-INSIDE_EPS - bary_offset) * run_inv_slope  # (3, R), meaningless where the slope is 0
    # A barycentric constant along the row and negative: no pixel of the row is inside.
    dead = torch.where((bary_slope == 0) & (bary_offset < -INSIDE_EPS), -inf, inf)
    lo = torch.ceil(_max3(crossing + run_lower) - 0.25).clamp(min=0)
    hi = torch.floor(_min3(torch.minimum(crossing + run_upper, dead)) + 0.25)
    hi = torch.minimum(hi, width - 1)
    lo = torch.minimum(lo, width)
    hi = torch.maximum(hi, torch.full_like(hi, -1))
    # lo (hi) is the first (last) inside pixel or the one before (after) it: test it exactly.
    probes = torch.stack([lo, hi])  # (2, R)
    values = bary_offset[:, None] + bary_slope[:, None] * probes  # (3, 2, R)
    inside = _min3(values) >= -INSIDE_EPS
    lo = torch.where(inside[0] & (lo < width), lo, lo + 1)
    hi = torch.where(inside[1] & (hi >= 0), hi, hi - 1)
    count = (hi - lo + 1).clamp(min=0).long()
    return run_face, dy, lo.long(), count, run_slope[3], offset[3]


def visible_faces(
    verts_px: torch.Tensor,
    faces: torch.Tensor,
    height: int,
    width: int,
    cull_backfaces: bool = False,
    near: float = 1e-6,
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
) -> VisibleFaces:
    """The nearest face at every covered pixel, without full-image buffers (the work and memory scale with
    the area the meshes cover, not with the image size).

    Args:
        verts_px: (B, V, 3) vertices as ``(x_px, y_px, z)`` (see `rasterize`).
        faces: (F, 3) long vertex indices shared by the batch.
        height: image height H in pixels.
        width: image width W in pixels.
        cull_backfaces: drop faces that are clockwise on screen.
        near: faces with any vertex at ``z <= near`` are dropped.
        max_candidates: bound on the (pixel, face) fragments processed at once (memory control).

    Returns:
        `VisibleFaces` (batch, y, x, face), one entry per covered pixel, sorted by batch, row and column.

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
    batch_size, num_verts = verts_px.shape[:2]
    dtype = verts_px.dtype
    faces = faces.to(device=device, dtype=torch.long)
    num_faces = faces.shape[0]
    empty = torch.zeros(0, dtype=torch.long, device=device)

    with torch.no_grad():
        # Corner coordinates as (3 corners, B * F faces) rows, face index b * F + f.
        mesh_offset = num_verts * torch.arange(batch_size, device=device)[:, None]
        corner_ids = (faces.T[:, None, :] + mesh_offset).reshape(3, -1)
        coords = verts_px.detach().reshape(-1, 3).T.contiguous()  # (3, B * V): x, y, z
        x, y, z = (coords[k].index_select(0, corner_ids.reshape(-1)).view(3, -1) for k in range(3))
        x_min, x_max, y_min, y_max = _min3(x), _max3(x), _min3(y), _max3(y)
        # Pixel range whose centres fall inside each face's bounding box, clamped to the image.
        x0 = torch.ceil(x_min - 0.5).clamp(min=0)
        x1 = torch.floor(x_max - 0.5).clamp(max=width - 1)
        y0 = torch.ceil(y_min - 0.5).clamp(min=0)
        y1 = torch.floor(y_max - 0.5).clamp(max=height - 1)
        area = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
        keep = (x1 >= x0) & (y1 >= y0) & (_min3(z) > near) & (area.abs() > 1e-12)
        # Any inf or nan coordinate makes this sum inf or nan.
        keep &= torch.isfinite(x_min - x_max + y_min - y_max + z.sum(dim=0))
        if cull_backfaces:
            keep &= area < 0
        kept = torch.nonzero(keep).squeeze(1)
        if kept.numel() == 0:
            return VisibleFaces(empty, empty, empty, empty)
        x0, y0, x1, y1 = x0[kept], y0[kept], x1[kept], y1[kept]
        a, b, c = face_planes(x[:, kept] - (x0 + 0.5), y[:, kept] - (y0 + 0.5), z[:, kept])
        x0, y0 = x0.long(), y0.long()
        box_w, box_h = x1.long() - x0 + 1, y1.long() - y0 + 1
        run_face, dy, lo, count, inv_z_slope, inv_z_offset = _row_runs(a, b, c, box_w, box_h)
        num_runs = run_face.numel()
        if num_runs > _RUN_MASK:
            raise ValueError(f'too many face rows ({num_runs}) for one call; split the batch')

        # The z-buffer covers only the bounding box of the kept faces (of every mesh in the batch).
        top, left = int(y0.min()), int(x0.min())
        win_h, win_w = int(y1.max()) - top + 1, int(x1.max()) - left + 1
        mesh = torch.div(kept, num_faces, rounding_mode='floor')
        # Index in the window of each run's first pixel.
        run_pix = ((mesh * win_h + y0 - top) * win_w + x0 - left).index_select(0, run_face) + dy * win_w + lo
        keys = torch.zeros(batch_size * win_h * win_w, dtype=torch.long, device=device)
        ends = torch.cumsum(count, dim=0)
        first = ends - count  # index of each run's first fragment
        chunk_id = torch.div(first, max_candidates, rounding_mode='floor')
        bounds = (torch.nonzero(chunk_id[1:] != chunk_id[:-1]).squeeze(1) + 1).tolist()
        for start, stop in zip([0] + bounds, bounds + [num_runs]):
            cnt = count[start:stop]
            chunk_first = int(first[start])
            num_frag = int(ends[stop - 1]) - chunk_first
            if num_frag == 0:
                continue
            # Per fragment: its run (chunk-local index) and its position in the chunk; per run: the position
            # of its first fragment, so that a fragment's column in its run is ``frag - run_first[run]``.
            run = torch.repeat_interleave(torch.arange(stop - start, device=device), cnt, output_size=num_frag)
            frag = torch.arange(num_frag, device=device)
            run_first = first[start:stop] - chunk_first
            pix = frag + (run_pix[start:stop] - run_first).index_select(0, run)
            dx = frag.to(dtype) + (lo[start:stop] - run_first).to(dtype).index_select(0, run)
            inv_z = inv_z_slope[start:stop].index_select(0, run) * dx + inv_z_offset[start:stop].index_select(0, run)
            inv_z = inv_z.float().clamp(min=torch.finfo(torch.float32).tiny)
            key = (inv_z.view(torch.int32).long() << _RUN_BITS) + (_RUN_MASK - start - run)
            keys.scatter_reduce_(0, pix, key, reduce='amax')

        covered = torch.nonzero(keys).squeeze(1)
        winner_run = _RUN_MASK - (keys.index_select(0, covered) & _RUN_MASK)
        face = kept.index_select(0, run_face).index_select(0, winner_run)
        if batch_size == 1:
            batch, rem = torch.zeros_like(covered), covered
        else:
            batch = torch.div(covered, win_h * win_w, rounding_mode='floor')
            rem = covered - batch * (win_h * win_w)
            face = face - batch * num_faces
        row_in_win = torch.div(rem, win_w, rounding_mode='floor')
        return VisibleFaces(batch, row_in_win + top, rem - row_in_win * win_w + left, face)


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
        max_candidates: bound on the (pixel, face) fragments processed at once (memory control).

    Returns:
        ``(face_idx, bary, depth)``:
        face_idx: (B, H, W) long, index into ``faces`` of the visible face, -1 for background.
        bary: (B, H, W, 3) perspective-correct barycentric coordinates of the pixel centre in the visible
        face (0 for background).
        depth: (B, H, W) camera depth of the visible surface, ``+inf`` for background.

    Raises:
        ValueError: on badly shaped inputs.
    """
    vis = visible_faces(verts_px, faces, height, width, cull_backfaces, near, max_candidates)
    device, dtype = verts_px.device, verts_px.dtype
    batch_size = verts_px.shape[0]
    num_pix = batch_size * height * width
    covered = (vis.batch * height + vis.y) * width + vis.x
    face_buf = torch.full((num_pix,), -1, device=device, dtype=torch.long)
    face_buf[covered] = vis.face
    bary = torch.zeros(num_pix, 3, device=device, dtype=dtype)
    depth = torch.full((num_pix,), float('inf'), device=device, dtype=dtype)
    if covered.numel() > 0:
        centre = torch.stack([vis.x, vis.y], dim=1).to(dtype) + 0.5
        corners = verts_px[vis.batch[:, None], faces.to(device=device, dtype=torch.long)[vis.face]]  # (N, 3, 3)
        w, tri_area = _edge_weights(centre, corners[..., :2])
        pix_bary, pix_depth = _perspective_bary(w, tri_area, corners[..., 2])
        bary = bary.index_put((covered,), pix_bary)
        depth = depth.index_put((covered,), pix_depth)
    face_idx = face_buf.view(batch_size, height, width)
    return face_idx, bary.view(batch_size, height, width, 3), depth.view(batch_size, height, width)
