"""Frame input and output for the demo: videos, image folders and single images in; H.264 video and PNGs out.

Frames are streamed as RGB uint8 arrays, never extracted to disk first. Video is read with OpenCV (any
container and codec its FFmpeg backend reads). The output video is encoded to H.264 (yuv420p) with the
ffmpeg binary that ships inside the `imageio-ffmpeg` wheel, so no system ffmpeg is needed. PNGs are written
by a small encoder here (`encode_png`), about four times cheaper than OpenCV's on full-HD frames.

All functions and writers are safe to use from worker threads (each writer belongs to one thread at a time;
nothing global changes per call).

Typical use::

    source = open_frame_source('clip.mp4')
    for index, frame_rgb in source.frames():
        ...
    with VideoWriter('out.mp4', fps=source.fps) as writer:
        writer.write(frame_rgb)
"""
from __future__ import annotations

import logging
import os
import re
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')
DEFAULT_FOLDER_FPS = 30.0


def natural_key(name: str) -> list:
    """Sort key that orders 'frame2' before 'frame10'."""
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r'(\d+)', name)]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted naturally.

    Raises:
        FileNotFoundError: the folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'image folder not found: {folder}')
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read one image as (H, W, 3) RGB uint8 (alpha dropped, grey expanded).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not an image OpenCV can decode.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'image not found: {path}')
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise ValueError(f'cannot decode image {path}: not an image format OpenCV reads (png, jpg, bmp, tiff, webp)')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@dataclass
class FrameSource:
    """A sequence of RGB frames from a video, an image folder or one image.

    Attributes:
        kind: 'video', 'folder' or 'image'.
        path: the input path.
        fps: frames per second (the video's own; ``DEFAULT_FOLDER_FPS`` for folders and images).
        num_frames: number of frames (for videos OpenCV's count, checked while reading).
        width, height: size of the first frame in pixels.
        names: per-frame file stems for folders and images (used to name outputs), else empty.
    """

    kind: str
    path: Path
    fps: float
    num_frames: int
    width: int
    height: int
    names: list[str] = field(default_factory=list)
    _files: list[Path] = field(default_factory=list, repr=False)
    max_frames: int | None = None

    def __len__(self) -> int:
        return self.num_frames if self.max_frames is None else min(self.num_frames, self.max_frames)

    def frames(self) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame_index, frame_rgb (H, W, 3) uint8)`` in order, streaming from disk."""
        limit = len(self)
        if self.kind == 'video':
            import cv2

            cap = cv2.VideoCapture(str(self.path))
            try:
                index = 0
                while index < limit:
                    ok, frame_bgr = cap.read()
                    if not ok:
                        break
                    yield index, cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB)
                    index += 1
            finally:
                cap.release()
        else:
            for index, file in enumerate(self._files[:limit]):
                yield index, read_image_rgb(file)

    def batches(self, batch_size: int) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        """Yield lists of at most ``batch_size`` frame indices and frames."""
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        indices, frames = [], []
        for index, frame in self.frames():
            indices.append(index)
            frames.append(frame)
            if len(frames) == batch_size:
                yield indices, frames
                indices, frames = [], []
        if frames:
            yield indices, frames

    def read_frames(self, indices: set[int] | None = None) -> dict[int, np.ndarray]:
        """Load the frames with the given indices (all if None) into memory as {index: frame_rgb}."""
        return {i: f for i, f in self.frames() if indices is None or i in indices}


def open_frame_source(path: str | os.PathLike, max_frames: int | None = None) -> FrameSource:
    """Open a video file, an image folder or an image as a `FrameSource`.

    Args:
        path: video file (any container OpenCV reads: mp4, avi, mov, mkv, webm, ...), folder of images
            (sorted naturally by name), or one image file.
        max_frames: read at most this many frames (None reads all).

    Raises:
        FileNotFoundError: nothing exists at ``path``.
        ValueError: the file cannot be read, the video has no frames, or the folder holds no images.
    """
    import cv2

    path = Path(path)
    if max_frames is not None and max_frames < 1:
        raise ValueError(f'max_frames must be >= 1, got {max_frames}')
    if path.is_dir():
        files = list_images(path)
        if not files:
            raise ValueError(f'no images ({", ".join(IMAGE_EXTENSIONS)}) in folder {path}')
        first = read_image_rgb(files[0])
        return FrameSource('folder', path, DEFAULT_FOLDER_FPS, len(files), first.shape[1], first.shape[0],
                           names=[f.stem for f in files], _files=files, max_frames=max_frames)
    if not path.exists():
        raise FileNotFoundError(f'input not found: {path}')
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        img = read_image_rgb(path)
        return FrameSource('image', path, DEFAULT_FOLDER_FPS, 1, img.shape[1], img.shape[0],
                           names=[path.stem], _files=[path], max_frames=max_frames)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise ValueError(f'cannot read video {path}: no video stream OpenCV can decode (damaged file, '
                             f'audio only, or an unsupported codec)')
        ok, frame = cap.read()
        if not ok or frame is None:
            raise ValueError(f'video {path} has no readable frames')
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    if not np.isfinite(fps) or fps <= 0 or fps > 1000:
        logger.warning('video %s reports no usable frame rate; assuming %.0f fps', path, DEFAULT_FOLDER_FPS)
        fps = DEFAULT_FOLDER_FPS
    if count <= 0:
        count = _count_frames(path)
    return FrameSource('video', path, fps, count, frame.shape[1], frame.shape[0], max_frames=max_frames)


def _count_frames(path: Path) -> int:
    """Count frames by decoding (for containers that do not store a frame count)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    return count


class VideoWriter:
    """Write RGB frames to an H.264 .mp4 (yuv420p) with imageio-ffmpeg's bundled ffmpeg.

    Odd frame sizes are padded by one black pixel row/column (yuv420p needs even sizes). All frames must
    have the size of the first one. Frames are converted to yuv420p here (OpenCV, BT.601 limited range,
    the same conversion ffmpeg applies to RGB input) and piped to ffmpeg: half the bytes through the pipe
    and no colour conversion in ffmpeg. x264 runs on ``threads`` threads: one thread costs the least CPU
    time per frame (the frame-threading of more threads costs about a fifth more), which is what counts
    when the demo's other stages keep the other cores busy.

    Args:
        path: output .mp4 path.
        fps: frame rate.
        crf: x264 quality (lower is better; 18 is visually lossless, 23 the x264 default).
        preset: x264 speed preset (slower presets give smaller files at the same crf).
        threads: x264 encoder threads (0 lets x264 choose, about 1.5 per core).
    """

    def __init__(self, path: str | os.PathLike, fps: float, crf: int = 20, preset: str = 'veryfast',
                 threads: int = 1) -> None:
        self.path = Path(path)
        self.fps = float(fps)
        self.crf = int(crf)
        self.preset = str(preset)
        self.threads = int(threads)
        self._gen = None
        self._size: tuple[int, int] | None = None
        self.num_frames = 0

    def write(self, frame_rgb: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 RGB frame."""
        import cv2

        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f'frames must be (H, W, 3) uint8 RGB, got {frame_rgb.shape} {frame_rgb.dtype}')
        height, width = frame_rgb.shape[:2]
        if self._gen is None:
            import imageio_ffmpeg

            self._size = (width + width % 2, height + height % 2)
            self._gen = imageio_ffmpeg.write_frames(
                str(self.path), self._size, fps=self.fps, codec='libx264', pix_fmt_in='yuv420p',
                pix_fmt_out='yuv420p', macro_block_size=1, ffmpeg_log_level='error',
                output_params=['-crf', str(self.crf), '-preset', self.preset, '-threads', str(self.threads)])
            self._gen.send(None)
        if (width + width % 2, height + height % 2) != self._size:
            raise ValueError(f'frame size {width}x{height} differs from the first frame ({self._size})')
        if width % 2 or height % 2:
            frame_rgb = np.pad(frame_rgb, ((0, height % 2), (0, width % 2), (0, 0)))
        self._gen.send(cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2YUV_I420))
        self.num_frames += 1

    def close(self) -> None:
        """Finish the file (safe to call twice)."""
        if self._gen is not None:
            self._gen.close()
            self._gen = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# PNG frames: every row uses PNG's "Up" filter (the byte difference to the row above), then deflate at
# level 1. Measured on the demo's 1080p overlays (dancer.mp4): 1.1 MB per frame, against 1.5 MB for
# OpenCV's default encoder, at a quarter of its time with ISA-L's deflate (`isal`; see docs/speed.md).
PNG_DEFLATE_LEVEL = 1
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_FILTER_UP = 2


def _deflate_zlib(data: bytes | memoryview) -> bytes:
    """zlib stream of ``data`` with the standard library (run-length matching: the fastest mode for
    Up-filtered frames)."""
    compressor = zlib.compressobj(PNG_DEFLATE_LEVEL, zlib.DEFLATED, 15, 8, zlib.Z_RLE)
    return compressor.compress(data) + compressor.flush()


def _deflate_isal(data: bytes | memoryview) -> bytes:
    """zlib stream of ``data`` with ISA-L (several times faster than zlib at a similar size)."""
    from isal import isal_zlib

    return isal_zlib.compress(data, PNG_DEFLATE_LEVEL)


def default_deflate():
    """The fastest zlib-stream compressor installed: ISA-L's (`isal`, a requirement) or the standard library's."""
    try:
        import isal.isal_zlib  # noqa: F401
    except ImportError:
        return _deflate_zlib
    return _deflate_isal


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(data, zlib.crc32(kind)))


def encode_png(frame_rgb: np.ndarray, deflate=None) -> bytes:
    """Encode an (H, W, 3) uint8 RGB image as a PNG file (lossless, 8-bit RGB).

    Args:
        frame_rgb: the image.
        deflate: function from bytes to a zlib stream; None uses `default_deflate()`.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: the image is not (H, W, 3) uint8.
    """
    if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8 or frame_rgb.size == 0:
        raise ValueError(f'PNG frames must be (H, W, 3) uint8 RGB, got {frame_rgb.shape} {frame_rgb.dtype}')
    height, width = frame_rgb.shape[:2]
    rows = np.ascontiguousarray(frame_rgb).reshape(height, width * 3)
    filtered = np.empty((height, width * 3 + 1), dtype=np.uint8)
    filtered[:, 0] = _PNG_FILTER_UP
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 arithmetic wraps modulo 256, as PNG's
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)  # 8 bits, RGB, deflate, no interlace
    idat = (deflate or default_deflate())(filtered.data)
    return b''.join([_PNG_SIGNATURE, _png_chunk(b'IHDR', header), _png_chunk(b'IDAT', idat),
                     _png_chunk(b'IEND', b'')])


def write_png(path: str | os.PathLike, frame_rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image as PNG (see `encode_png`); creates the folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(frame_rgb))
