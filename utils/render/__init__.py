"""Rendering in pure PyTorch, no compiled renderer: the z-buffer rasteriser (`rasterizer`), shaded mesh
overlays for the demo and visualisations (`renderer`), DensePose IUV label maps for training
(`iuv_renderer`), the training-log image grids (`train_vis`) and test meshes (`mesh_primitives`).

May import: the standard library, numpy/torch and other third-party packages, `core.constants`, top-level
`utils` modules (such as `utils.geometry`, `utils.densepose_methods`) and modules of this package. Never
`models`, `datasets`, the rest of `core`, `utils.video`, `utils.export` or a script: callers pass meshes,
cameras and data paths in.
"""
