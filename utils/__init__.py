"""Helpers that know nothing of the network, the datasets or the command line: pure maths (`geometry`,
`transforms`, `iuvmap`), image crops (`imutils`), checkpoint files (`saver`), training bookkeeping
(`train_utils`), the OpenMP wait policy scripts set before torch starts (`openmp`), body-model data readers
and builders (`densepose_methods`, `part_utils`, `standin`), and the subpackages `render` (rasterising and
drawing meshes), `video` (frames in and out, detection, tracking, smoothing) and `export` (result, animation
and ONNX files).

Import direction (checked by tests/test_architecture.py): `utils` may import only the standard library,
third-party packages, `core.constants` and `utils` itself; top-level modules may use `utils.render`, and
the subpackages never import each other. Nothing here reads a shared config or takes an argparse
namespace: callers pass values, paths and config nodes. See docs/architecture.md.
"""
