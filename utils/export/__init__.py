"""Files written for other programs: the demo's result files (`results`: output.pkl, output.npz, .obj),
animation export to glTF/BVH/SMPL .npz (`animation`) and the network's ONNX export (`onnx_export`).

May import: the standard library, numpy/torch and other third-party packages (onnx and onnxruntime only
inside functions), `core.constants`, top-level `utils` modules and modules of this package. Never `models`,
`datasets`, the rest of `core`, `utils.render`, `utils.video` or a script: callers pass the network or the
body model in (`models.build.load_body_model` gives the demo's body model).
"""
