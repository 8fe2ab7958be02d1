"""Mesh overlay renderer for the demo and for visualisations, built on the pure-PyTorch rasteriser.

`PyRenderer` (the original's class name, re-implemented without OpenGL) draws one or several meshes given
in the full-image camera frame (OpenCV axes: x right, y down, z forward, metres) through a pinhole camera
(focal length in pixels, principal point in pixels) over a frame. All people go through one rasterisation
call, so they share one z-buffer: whoever is nearer is in front at every pixel (the original painted
people one after the other). Shading is Lambertian with an ambient term and three fixed directional
lights, using interpolated vertex normals (smooth shading) and two-sided lighting.

Typical use (demo, one frame)::

    renderer = PyRenderer(faces=get_smpl_faces(), focal_length=5000.0)
    overlay = renderer(verts, frame=frame_rgb, cam_t=cam_t)               # (H, W, 3) uint8
    side = renderer(verts, frame=frame_rgb, cam_t=cam_t, empty_bg=True, side_view=True)

For speed on large frames pass ``render_scale < 1``: the meshes are rasterised at the reduced size and
the colour and coverage are upsampled (bilinear, premultiplied alpha) before compositing, which also
softens the edges. ``render_scale > 1`` supersamples (anti-aliasing) at a higher cost.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from utils.geometry import vertex_normals
from utils.render.rasterizer import face_planes, visible_faces

logger = logging.getLogger(__name__)

# Named mesh colours, RGB in [0, 1]. 'purple' is the original demo's colour; the others are ours.
COLORS = {
    'purple': (0.55, 0.4, 0.9),
    'pink': (0.9, 0.55, 0.7),
    'neutral': (0.8, 0.8, 0.8),
    'blue': (0.45, 0.6, 0.95),
    'green': (0.5, 0.85, 0.55),
    'orange': (0.95, 0.65, 0.35),
}
DEFAULT_COLOR = 'purple'

# Fixed directional lights in the camera frame (x right, y down, z forward): unit vector from the surface
# towards the light, and intensity. A key light from the upper left in front, a fill light from the
# right and a light from above.
DEFAULT_LIGHTS = (
    ((-0.5, -0.6, -1.0), 0.55),
    ((0.8, -0.1, -0.6), 0.2),
    ((0.0, -1.0, -0.1), 0.15),
)
DEFAULT_AMBIENT = 0.25


def _as_float_tensor(x: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """Return ``x`` as a float32 tensor on ``device``."""
    if isinstance(x, torch.Tensor):
        return x.detach().to(device=device, dtype=torch.float32)
    return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=device)


def _parse_colors(colors: str | Sequence | None, num_meshes: int) -> torch.Tensor:
    """Turn a colour spec (name, RGB triple, or one of those per mesh) into a (num_meshes, 3) tensor."""
    if colors is None:
        colors = DEFAULT_COLOR

    def one(c) -> tuple[float, float, float]:
        if isinstance(c, str):
            if c not in COLORS:
                raise ValueError(
                    f'unknown colour name {c!r}; use one of {sorted(COLORS)} or an RGB triple in [0, 1]'
                )
            return COLORS[c]
        rgb = tuple(float(v) for v in c)
        if len(rgb) != 3:
            raise ValueError(f'a colour must be a name or an RGB triple in [0, 1], got {c!r}')
        return rgb

    is_single = isinstance(colors, str) or (
        len(colors) == 3 and all(np.isscalar(v) and not isinstance(v, str) for v in colors))
    rgb_list = [one(colors)] * num_meshes if is_single else [one(c) for c in colors]
    if len(rgb_list) != num_meshes:
        raise ValueError(f'got {len(rgb_list)} colours for {num_meshes} meshes')
    return torch.tensor(rgb_list, dtype=torch.float32)


def rotate_about_vertical(verts: torch.Tensor, angle_deg: float) -> torch.Tensor:
    """Rotate each mesh about the camera's vertical (y) axis through its own centre (vertex mean).

    Args:
        verts: (N, V, 3) vertices in the camera frame.
        angle_deg: rotation angle in degrees (right-handed about +y, which points down).

    Returns:
        (N, V, 3) rotated vertices.
    """
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    rot_y = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=verts.dtype, device=verts.device)
    centre = verts.mean(dim=1, keepdim=True)
    return (verts - centre) @ rot_y.T + centre


class PyRenderer:
    """Shaded mesh overlays in the full-image pinhole camera, pure PyTorch (CPU or GPU).

    Args:
        faces: (F, 3) vertex indices shared by every mesh (e.g. SMPL's 13776 faces).
        resolution: default output size (width, height) in pixels, used when no frame is given.
        focal_length: focal length in pixels (the demo uses 5000, the original's constant).
        principal_point: (cx, cy) in pixels; None puts it at the image centre (W/2, H/2).
        render_scale: rasterise at this fraction of the output size: in (0, 1) faster, with the colour and
            coverage upsampled bilinearly; a whole number k > 1 supersamples k x k per pixel (anti-aliased
            edges, box filter).
        device: torch device for the work; None uses CPU.
        ambient: ambient light intensity.
        lights: directional lights as ((dx, dy, dz) towards the light in the camera frame, intensity).
        cull_backfaces: skip faces turned away from the camera (right for closed meshes such as SMPL, and
            about twice as fast); set False for open meshes whose inside may be seen.
    """

    def __init__(
        self,
        faces: np.ndarray | torch.Tensor,
        resolution: tuple[int, int] = (224, 224),
        focal_length: float = 5000.0,
        principal_point: tuple[float, float] | None = None,
        render_scale: float = 1.0,
        device: str | torch.device | None = None,
        ambient: float = DEFAULT_AMBIENT,
        lights: Sequence[tuple[tuple[float, float, float], float]] = DEFAULT_LIGHTS,
        cull_backfaces: bool = True,
    ) -> None:
        if render_scale <= 0 or (render_scale > 1 and render_scale != round(render_scale)):
            raise ValueError(
                f'render_scale must be in (0, 1] or a whole number (supersampling), got {render_scale}'
            )
        self.device = torch.device(device) if device is not None else torch.device('cpu')
        self.faces = torch.as_tensor(np.asarray(faces) if not isinstance(faces, torch.Tensor) else faces)
        self.faces = self.faces.to(device=self.device, dtype=torch.long)
        if self.faces.dim() != 2 or self.faces.shape[1] != 3:
            raise ValueError(f'faces must be (F, 3), got {tuple(self.faces.shape)}')
        self.resolution = (int(resolution[0]), int(resolution[1]))
        self.focal_length = float(focal_length)
        self.principal_point = principal_point
        self.render_scale = float(render_scale)
        self.ambient = float(ambient)
        light_dirs = torch.tensor([d for d, _ in lights], dtype=torch.float32)
        self.light_dirs = F.normalize(light_dirs, dim=1).to(self.device)
        self.light_intensity = torch.tensor([i for _, i in lights], dtype=torch.float32, device=self.device)
        self.cull_backfaces = cull_backfaces

    def _prepare_verts(
        self,
        verts: np.ndarray | torch.Tensor | Sequence,
        cam_t: np.ndarray | torch.Tensor | None,
        side_view: bool,
        side_view_deg: float,
    ) -> torch.Tensor:
        """Stack the meshes into (N, V, 3) camera-frame vertices on the device."""
        if isinstance(verts, (list, tuple)):
            verts = torch.stack([_as_float_tensor(v, self.device) for v in verts]) if verts else None
            if verts is None:
                return torch.zeros(0, 0, 3, device=self.device)
        else:
            verts = _as_float_tensor(verts, self.device)
        if verts.dim() == 2:
            verts = verts[None]
        if verts.dim() != 3 or verts.shape[-1] != 3:
            raise ValueError(f'verts must be (V, 3) or (N, V, 3) in metres, got {tuple(verts.shape)}')
        if cam_t is not None:
            cam_t = _as_float_tensor(cam_t, self.device).reshape(-1, 3)
            if cam_t.shape[0] not in (1, verts.shape[0]):
                raise ValueError(
                    f'cam_t must be (3,) or (N, 3) for N={verts.shape[0]} meshes, got {tuple(cam_t.shape)}'
                )
            verts = verts + cam_t[:, None, :]
        if side_view:
            verts = rotate_about_vertical(verts, side_view_deg)
        return verts

    def _image_size(self, frame: np.ndarray | None) -> tuple[int, int]:
        """(height, width) of the output."""
        if frame is not None:
            if frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f'frame must be an (H, W, 3) RGB uint8 image, got shape {frame.shape}')
            return int(frame.shape[0]), int(frame.shape[1])
        return self.resolution[1], self.resolution[0]

    def _shaded_pixels(
        self,
        verts: np.ndarray | torch.Tensor | Sequence,
        cam_t: np.ndarray | torch.Tensor | None,
        colors: str | Sequence | None,
        render_size: tuple[int, int],
        image_size: tuple[int, int],
        side_view: bool,
        side_view_deg: float,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Rasterise all meshes with one z-buffer at ``render_size`` and shade the covered pixels.

        Shading (smooth normals, two-sided Lambertian lighting) is evaluated only on the covered pixels,
        from per-face planes: at a pixel, the perspective-correct interpolated normal is proportional to
        ``sum_k (l_k / z_k) n_k`` with ``l_k`` the screen barycentrics (linear in the pixel position) and
        ``z_k``, ``n_k`` the depth and unit normal of corner k; the visible point lies on the pixel's ray,
        so the sign of ``normal . ray`` tells whether the normal faces the camera.

        Returns:
            None if nothing is visible, else ``(y (P,), x (P,), rgb (3, P))``: the covered pixels of the
            render (long row and column) and their shaded colour in [0, 1].
        """
        verts_cam = self._prepare_verts(verts, cam_t, side_view, side_view_deg)
        num_meshes = verts_cam.shape[0]
        if num_meshes == 0:
            return None
        mesh_rgb = _parse_colors(colors, num_meshes).to(self.device)
        num_verts, num_faces = verts_cam.shape[1], self.faces.shape[0]
        r_h, r_w = render_size
        height, width = image_size
        cx, cy = self.principal_point if self.principal_point is not None else (width / 2.0, height / 2.0)
        sx, sy = r_w / width, r_h / height
        # Pinhole projection into the render: (f * X / Z + cx) * sx, (f * Y / Z + cy) * sy, depth Z.
        depth = verts_cam[..., 2]
        x_px = (verts_cam[..., 0] / depth * self.focal_length + cx) * sx
        y_px = (verts_cam[..., 1] / depth * self.focal_length + cy) * sy
        verts_px = torch.stack([x_px, y_px, depth], dim=-1).reshape(1, num_meshes * num_verts, 3)
        offsets = torch.arange(num_meshes, device=self.device)[:, None, None] * num_verts
        all_faces = (self.faces[None] + offsets).reshape(-1, 3)
        vis = visible_faces(verts_px, all_faces, r_h, r_w, cull_backfaces=self.cull_backfaces)
        if vis.face.numel() == 0:
            return None

        # Per face: the interpolated normal, up to a positive factor, is linear in the pixel position
        # (dx, dy) relative to corner 0: sum_k (a_k dx + b_k dy + c_k) / z_k * n_k = A dx + B dy + C.
        corner_ids = all_faces.T.reshape(-1)  # (3 * N * F,)
        coords = verts_px[0].T.contiguous()  # (3, N * V)
        x, y, z = coords.index_select(1, corner_ids).view(3, 3, -1)  # each (3 corners, N * F)
        a, b, c = face_planes(x - x[0], y - y[0], z)
        normals = vertex_normals(verts_cam, self.faces).reshape(-1, 3).T.contiguous()  # (3, N * V)
        corner_normals = normals.index_select(1, corner_ids).view(3, 3, -1)  # (component, corner, N * F)
        a_z, b_z, c_z = a[:3] / z, b[:3] / z, c[:3] / z
        table = torch.cat([x[:1], y[:1]] + [(corner_normals * p).sum(dim=1) for p in (a_z, b_z, c_z)])
        pix = table.index_select(1, vis.face)  # (11, P): x, y of corner 0, then A, B, C (3 each)
        px = vis.x.to(torch.float32) + 0.5
        py = vis.y.to(torch.float32) + 0.5
        dx, dy = px - pix[0], py - pix[1]
        n = pix[2:5] * dx + pix[5:8] * dy + pix[8:11]  # (3, P)
        # Two-sided lighting: turn every normal towards the camera (against the pixel's viewing ray).
        ray_x = (px / sx - cx) / self.focal_length
        ray_y = (py / sy - cy) / self.focal_length
        facing_away = n[0] * ray_x + n[1] * ray_y + n[2] > 0
        n = torch.where(facing_away, -n, n)
        n = n / torch.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).clamp(min=1e-12)
        diffuse = self.light_intensity @ (self.light_dirs @ n).clamp(min=0)
        shade = (self.ambient + diffuse).clamp(max=1.0)
        mesh_id = torch.div(vis.face, num_faces, rounding_mode='floor')
        rgb = mesh_rgb.T.index_select(1, mesh_id) * shade
        return vis.y, vis.x, rgb

    def _render_region(
        self,
        verts: np.ndarray | torch.Tensor | Sequence,
        cam_t: np.ndarray | torch.Tensor | None,
        colors: str | Sequence | None,
        image_size: tuple[int, int],
        side_view: bool,
        side_view_deg: float,
    ) -> tuple[torch.Tensor, torch.Tensor, int, int] | None:
        """Render the meshes inside the bounding box of their coverage.

        Returns:
            None if nothing is visible, else ``(rgb_premult (h, w, 3), alpha (h, w), top, left)``: the
            premultiplied colour and coverage of the output-resolution region whose top-left pixel is
            (top, left).
        """
        height, width = image_size
        scale = self.render_scale
        r_h, r_w = max(1, round(height * scale)), max(1, round(width * scale))
        shaded = self._shaded_pixels(verts, cam_t, colors, (r_h, r_w), image_size, side_view, side_view_deg)
        if shaded is None:
            return None
        ys, xs, rgb = shaded
        top, bottom, left, right = int(ys.min()), int(ys.max()) + 1, int(xs.min()), int(xs.max()) + 1
        if scale > 1:
            # Align the region to whole output pixels for the box-filter downsampling.
            k = int(round(scale))
            top, left = top // k * k, left // k * k
            bottom, right = min(r_h, -(-bottom // k) * k), min(r_w, -(-right // k) * k)
        elif scale < 1:
            # A margin of empty pixels, except at the image border where edge pixels are replicated.
            top, left = max(0, top - 1), max(0, left - 1)
            bottom, right = min(r_h, bottom + 1), min(r_w, right + 1)
        rgba = torch.zeros((bottom - top) * (right - left), 4, device=self.device)
        rgba[(ys - top) * (right - left) + xs - left] = torch.cat([rgb, torch.ones_like(rgb[:1])]).T
        rgba = rgba.view(bottom - top, right - left, 4)

        if scale == 1:
            return rgba[..., :3], rgba[..., 3], top, left
        rgba = rgba.permute(2, 0, 1)[None]
        if scale > 1:
            k = int(round(scale))
            out = F.avg_pool2d(rgba, k, ceil_mode=True)[0].permute(1, 2, 0)
            return out[..., :3], out[..., 3], top // k, left // k
        # Bilinear upsampling of the region (the same sampling as F.interpolate with align_corners=False on
        # the whole image), evaluated only on the output pixels that it can reach.
        out_top = max(0, int(math.floor((top - 1 + 0.5) / scale - 0.5)))
        out_bottom = min(height, int(math.ceil((bottom + 0.5) / scale + 0.5)))
        out_left = max(0, int(math.floor((left - 1 + 0.5) / scale - 0.5)))
        out_right = min(width, int(math.ceil((right + 0.5) / scale + 0.5)))
        sy, sx = r_h / height, r_w / width
        ys = (torch.arange(out_top, out_bottom, device=self.device) + 0.5) * sy - 0.5 - top
        xs = (torch.arange(out_left, out_right, device=self.device) + 0.5) * sx - 0.5 - left
        grid_y = (2 * ys + 1) / (bottom - top) - 1
        grid_x = (2 * xs + 1) / (right - left) - 1
        grid = torch.stack(torch.meshgrid(grid_x, grid_y, indexing='xy'), dim=-1)[None]
        out = F.grid_sample(rgba, grid, mode='bilinear', padding_mode='border', align_corners=False)
        out = out[0].permute(1, 2, 0).clamp(0, 1)
        return out[..., :3], out[..., 3], out_top, out_left

    def render_rgba(
        self,
        verts: np.ndarray | torch.Tensor | Sequence,
        cam_t: np.ndarray | torch.Tensor | None = None,
        colors: str | Sequence | None = None,
        image_size: tuple[int, int] | None = None,
        side_view: bool = False,
        side_view_deg: float = 270.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Render the meshes alone.

        Args:
            verts: (V, 3), (N, V, 3) or a list of N (V, 3) vertex arrays, metres, in the camera frame
                (or in the body frame if ``cam_t`` is given).
            cam_t: (3,) or (N, 3) translation added to each mesh (e.g. from
                `utils.geometry.crop_cam_to_full_cam_t`), metres; None if verts are already in place.
            colors: a name from `COLORS`, an RGB triple in [0, 1], or one of those per mesh.
            image_size: output (height, width); None uses the constructor's resolution.
            side_view: rotate every mesh about the vertical axis through its own centre first.
            side_view_deg: angle of that rotation in degrees (270 as the original video demo).

        Returns:
            ``(rgb_premult (H, W, 3), alpha (H, W))`` float tensors in [0, 1] on the device; the colour is
            premultiplied by the coverage ``alpha``.
        """
        height, width = image_size if image_size is not None else (self.resolution[1], self.resolution[0])
        rgb_premult = torch.zeros(height, width, 3, device=self.device)
        alpha = torch.zeros(height, width, device=self.device)
        region = self._render_region(verts, cam_t, colors, (height, width), side_view, side_view_deg)
        if region is not None:
            rgb, a, top, left = region
            rgb_premult[top:top + a.shape[0], left:left + a.shape[1]] = rgb
            alpha[top:top + a.shape[0], left:left + a.shape[1]] = a
        return rgb_premult, alpha

    def __call__(
        self,
        verts: np.ndarray | torch.Tensor | Sequence,
        frame: np.ndarray | None = None,
        cam_t: np.ndarray | torch.Tensor | None = None,
        colors: str | Sequence | None = None,
        empty_bg: bool = False,
        side_view: bool = False,
        side_view_deg: float = 270.0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """Render the meshes over a frame.

        Args:
            verts: (V, 3), (N, V, 3) or a list of N (V, 3) vertex arrays (metres, see `render_rgba`).
            frame: (H, W, 3) uint8 RGB background; None gives a black image of the constructor's resolution.
            cam_t: (3,) or (N, 3) translation added to each mesh, metres, or None.
            colors: a name from `COLORS`, an RGB triple in [0, 1], or one per mesh (default purple).
            empty_bg: draw on black instead of the frame (the frame still sets the size).
            side_view: rotate each mesh about the vertical axis through its centre (see `render_rgba`).
            side_view_deg: the side-view angle in degrees.
            out: (H, W, 3) uint8 array to draw into instead of a new one: a view works (for example one
                panel of a side-by-side canvas), and the frame itself draws in place without a copy.

        Returns:
            (H, W, 3) uint8 RGB image: ``out``, or a new array (the frame is not modified).
        """
        height, width = self._image_size(frame)
        if out is None:
            out = (np.zeros((height, width, 3), dtype=np.uint8) if frame is None or empty_bg
                   else np.array(frame, dtype=np.uint8, copy=True))
        else:
            if out.shape != (height, width, 3) or out.dtype != np.uint8:
                raise ValueError(f'out must be a ({height}, {width}, 3) uint8 array like the frame, got '
                                 f'{out.shape} {out.dtype}')
            if frame is None or empty_bg:
                out[...] = 0
            elif out is not frame:
                np.copyto(out, frame)
        if self.render_scale == 1:
            # Every covered pixel is opaque: write the shaded colours straight into the output.
            shaded = self._shaded_pixels(verts, cam_t, colors, (height, width), (height, width), side_view,
                                         side_view_deg)
            if shaded is not None:
                ys, xs, rgb = shaded
                colour = (rgb.T * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).cpu().numpy()
                if out.flags.c_contiguous:
                    out.reshape(-1, 3)[(ys * width + xs).cpu().numpy()] = colour
                else:
                    out[ys.cpu().numpy(), xs.cpu().numpy()] = colour
            return out
        region = self._render_region(verts, cam_t, colors, (height, width), side_view, side_view_deg)
        if region is None:
            return out
        rgb, alpha, top, left = region
        h, w = alpha.shape
        background = torch.from_numpy(out[top:top + h, left:left + w]).to(self.device, torch.float32) / 255.0
        composite = rgb + background * (1.0 - alpha[..., None])
        composite = (composite * 255.0 + 0.5).clamp(0, 255).to(torch.uint8)
        out[top:top + h, left:left + w] = composite.cpu().numpy()
        return out

    def silhouette(
        self,
        verts: np.ndarray | torch.Tensor | Sequence,
        cam_t: np.ndarray | torch.Tensor | None = None,
        image_size: tuple[int, int] | None = None,
    ) -> np.ndarray:
        """Coverage mask of the meshes.

        Args:
            verts: as in `render_rgba`.
            cam_t: as in `render_rgba`.
            image_size: (height, width); None uses the constructor's resolution.

        Returns:
            (H, W) bool mask, True where a mesh covers the pixel (coverage >= 0.5 when rescaled).
        """
        _, alpha = self.render_rgba(verts, cam_t, None, image_size)
        return (alpha >= 0.5).cpu().numpy()
