"""The pieces of tools/make_standin_body.py, one concern per module: `constants` (sizes and the anny-to-SMPL
tables), `anny_source` (anny's body in SMPL's pose and frame), `mesh` (remeshing to SMPL's exact sizes),
`model_pieces` (landmarks, joint regressors, mean parameters), `uv` (DensePose-style UV data),
`downsampling` (GraphCMR matrices) and `preview` (renders). Only the generator uses them; it needs anny.
"""
