"""Generate the project's stand-in body model (SMPL's file format) from the free `anny` body model.

SMPL cannot be shipped, so the project carries its own body model with SMPL's exact sizes (6890 vertices,
13776 faces, SMPL's 24-joint tree) converted from anny (NAVER, code Apache-2.0, MakeHuman assets CC0).
This script is the only part of the project that needs anny; its output under ``assets/standin/`` is
committed, and `utils.standin.ensure_standin` expands it into the official file formats.

Steps (all deterministic for a given ``--seed``):

1. Anny's rest body (A-pose, z up, facing -y) is re-posed into SMPL's T-pose (arms rotated to horizontal
   with anny's own skinning weights) and turned into SMPL's frame (y up, facing +z, metres). The eyeballs
   (separate closed shells) are dropped; the body shell is closed and genus 0.
2. The mean body is decimated with quadric edge collapse and brought to exactly 6890 vertices by splitting
   its longest edges; a closed genus-0 mesh with 6890 vertices has 2*6890-4 = 13776 faces.
3. Every new vertex is the barycentric projection of itself onto anny's surface, so any anny body maps
   linearly onto the new mesh; skinning weights and shapes are transferred through that map.
4. Vertices are permuted so that the indices SMPL's tables use as landmarks (nose 332, eyes, ears, toes,
   heels, finger tips) sit on those landmarks.
5. Shape: 10 principal directions (scaled to unit-variance betas) over random adult anny phenotypes,
   for a neutral (all genders), a male and a female model. Joints: anny bone heads mapped onto SMPL's 24
   joints; a sparse non-negative joint regressor over vertices is fitted across all the shapes.
6. Extra (9) and Human3.6M (17) joint regressors, the mean parameters, GraphCMR-style mesh downsampling
   (6890 -> 1723 -> 431 by real decimation) and DensePose-style UV data (24 parts) are derived.

Usage::

    ANNY_CACHE_DIR=/tmp/anny_cache python -m tools.make_standin_body --out assets/standin \
        [--samples 300] [--seed 0] [--preview output/standin_preview]

Needs ``pip install anny fast-simplification rtree`` (generator only). The first anny build takes about
half a minute and writes a large cache; point ANNY_CACHE_DIR outside the repository.
"""
from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import sys
import time

import numpy as np
import scipy.io
import scipy.optimize

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from tools.standin_body.anny_source import AnnySource
from tools.standin_body.constants import (
    GENDER_VALUE,
    JOINT_FROM_BONE,
    LANDMARK_VERTS,
    NUM_BETAS,
    NUM_DP_FACES,
    NUM_DP_VERTS,
    NUM_FACES,
    NUM_VERTS,
    PELVIS_REST,
    PHENOTYPE_RANGES,
    SMPL_PARENTS,
)
from tools.standin_body.downsampling import downsampling
from tools.standin_body.mesh import adjacency, barycentric_map, check_closed_genus0, decimate_to, relax_on_surface
from tools.standin_body.model_pieces import (
    extra_and_h36m_regressors,
    fit_joint_regressor,
    landmark_permutation,
    mean_params,
    pick_landmarks,
    sample_phenotypes,
)
from tools.standin_body.preview import render_previews
from tools.standin_body.uv import (
    adjust_dp_vertex_count,
    dp_vertex_count,
    face_neighbours,
    face_parts,
    face_subcharts,
    smooth_parts,
    uv_coordinates,
)
from utils import cli

logger = logging.getLogger('make_standin_body')


STANDIN_MD = '''# Stand-in body model (NOT SMPL)

These files have the names, sizes and formats of the SMPL body model files that PyMAF uses (6890
vertices, 13776 faces, SMPL's 24-joint tree, 10 shape parameters), but they are a **stand-in**: a body
model converted from [anny](https://github.com/naver/anny) (NAVER; code Apache-2.0, MakeHuman-derived
assets CC0) by `tools/make_standin_body.py`. They contain no SMPL data. Results obtained with them are
not comparable with published SMPL numbers, and checkpoints trained on real SMPL (such as PyMAF's
released one) expect SMPL's vertex layout, so meshes they predict through this model look wrong except
at the landmark vertices and joints.

- `smpl/SMPL_{NEUTRAL,MALE,FEMALE}.pkl`: plain-numpy SMPL pickles (`v_template`, `shapedirs` (10 PCA
  directions over adult anny bodies, unit-variance betas), `posedirs` (zeros: no pose correctives),
  `J_regressor` (sparse, fitted across shapes), `weights`, `kintree_table`, `f`, `J`, `standin: True`).
- `J_regressor_extra.npy`, `J_regressor_h36m.npy`: built from the joint regressor and landmark vertices.
- `smpl_mean_params.npz`: a relaxed standing pose (6D, global orientation 180 degrees about x), zero
  shape, camera [0.9, 0, 0].
- `mesh_downsampling.npz`: GraphCMR format, 6890 -> 1723 -> 431 by quadric decimation of this mesh.
- `UV_data/`: DensePose format, 24 parts, charts by simple cylindrical/planar projections; symmetry
  tables map each part's (U, V) onto its mirror part (identity, or U -> 1-U on the torso halves).

Credit: anny by NAVER Corp., Apache License 2.0 (code) and CC0 (assets, from MakeHuman).
'''

STANDIN_NOTE = ('STAND-IN body model generated by tools/make_standin_body.py from anny (NAVER, code '
                'Apache-2.0, MakeHuman assets CC0). It is NOT SMPL and carries none of SMPL\'s data.')


def save_mat_deterministic(path: pathlib.Path, arrays: dict) -> None:
    """scipy.io.savemat (compressed) with a fixed header text instead of the creation date."""
    import io
    buf = io.BytesIO()
    scipy.io.savemat(buf, arrays, do_compression=True)
    data = bytearray(buf.getvalue())
    header = b'MATLAB 5.0 MAT-file, stand-in body model UV data (not SMPL / DensePose)'
    data[:116] = header.ljust(116)
    path.write_bytes(bytes(data))


def build(out_dir: pathlib.Path, num_samples: int, seed: int, preview: pathlib.Path | None) -> dict:
    t0 = time.time()
    rng = np.random.default_rng(seed)
    src = AnnySource()
    logger.info('anny loaded in %.1f s, body shell %d vertices / %d faces', time.time() - t0,
                len(src.body_idx), len(src.faces))

    middle = {k: np.array([0.5 * (lo + hi)]) for k, (lo, hi) in PHENOTYPE_RANGES.items()}
    middle['gender'] = np.array([0.5])
    base = src.tposed(middle)
    base_verts = base['verts'][0]
    check_closed_genus0(base_verts, src.faces)

    dec_v, dec_f = decimate_to(base_verts, src.faces, NUM_VERTS)
    dec_v, dec_f = relax_on_surface(dec_v, dec_f, base_verts, src.faces)
    check_closed_genus0(dec_v, dec_f)
    bmap = barycentric_map(dec_v, base_verts, src.faces)
    dec_v = bmap @ base_verts
    bone_w = np.asarray(bmap @ src.bone_weights)
    chosen = pick_landmarks(dec_v, bone_w, src, base['heads'][0], base['keypoints'][0])
    order = landmark_permutation(NUM_VERTS, chosen, dec_v)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(NUM_VERTS)
    faces = inverse[dec_f]
    bmap = bmap[order]
    bone_w = bone_w[order]
    check_closed_genus0(dec_v[order], faces)
    if len(faces) != NUM_FACES:
        raise RuntimeError(f'expected {NUM_FACES} faces, got {len(faces)}')
    logger.info('mesh: %d vertices, %d faces (%.1f s)', NUM_VERTS, len(faces), time.time() - t0)

    weights = bone_w @ src.bone_to_segment
    weights = np.where(weights > 1e-3, weights, 0.0)
    weights /= weights.sum(1, keepdims=True)
    segment = weights.argmax(1)
    joint_bones = [src.bone(b) for b in JOINT_FROM_BONE]

    bodies, all_verts, all_joints = {}, [], []
    for gender, value in GENDER_VALUE.items():
        phen = sample_phenotypes(rng, num_samples, value)
        out = src.tposed(phen)
        verts = np.stack([bmap @ v for v in out['verts']])
        joints = out['heads'][:, joint_bones]
        shift = PELVIS_REST - joints[:, 0]
        verts += shift[:, None]
        joints += shift[:, None]
        mean = verts.mean(0)
        centred = (verts - mean).reshape(num_samples, -1)
        _, sing, vt = np.linalg.svd(centred, full_matrices=False)
        std = sing[:NUM_BETAS] / math.sqrt(num_samples - 1)
        dirs = vt[:NUM_BETAS] * std[:, None]
        signs = np.sign(dirs[np.arange(NUM_BETAS), np.abs(dirs).argmax(1)])
        dirs *= signs[:, None]
        grown = (mean + dirs[0].reshape(NUM_VERTS, 3))[:, 1]
        if np.ptp(grown) < np.ptp(mean[:, 1]):
            dirs[0] *= -1  # a positive first beta makes the body taller
        explained = float((sing[:NUM_BETAS] ** 2).sum() / (sing ** 2).sum())
        shapedirs = dirs.reshape(NUM_BETAS, NUM_VERTS, 3).transpose(1, 2, 0)
        heights = verts[..., 1].max(1) - verts[..., 1].min(1)
        logger.info('%s: 10 PCs explain %.5f of shape variance; heights %.2f-%.2f m', gender, explained,
                    heights.min(), heights.max())
        bodies[gender] = {'v_template': mean, 'shapedirs': shapedirs, 'explained': explained,
                          'height_range': [float(heights.min()), float(heights.max())]}
        all_verts.append(verts)
        all_joints.append(joints)
    all_verts = np.concatenate(all_verts)
    all_joints = np.concatenate(all_joints)

    jreg, jerr = fit_joint_regressor(all_verts, all_joints, bodies['neutral']['v_template'], segment)
    logger.info('joint regressor RMS error per joint (mm): %s', np.round(1000 * jerr, 1).tolist())
    logger.info('joint regressor: %d non-zeros, RMS error max %.2f mm, mean %.2f mm', jreg.nnz,
                1000 * jerr.max(), 1000 * jerr.mean())
    jreg_dense = jreg.toarray()
    extra, h36m = extra_and_h36m_regressors(jreg_dense, bodies['neutral']['v_template'], segment)

    neutral_v = bodies['neutral']['v_template']
    neutral_j = jreg_dense @ neutral_v
    neighbours = face_neighbours(faces)
    adj = adjacency(faces, NUM_VERTS)
    smooth_w = weights
    for _ in range(6):  # diffuse the skinning weights a little so that part borders follow smooth lines
        smooth_w = 0.5 * smooth_w + 0.5 * (adj @ smooth_w) / np.asarray(adj.sum(1))
    parts = smooth_parts(face_parts(neutral_v, faces, smooth_w, neutral_j), neighbours)
    torso_low = np.flatnonzero(np.isin(parts, (1, 2)))
    dropped = torso_low[np.argsort(neutral_v[faces[torso_low]].mean(1)[:, 1])[:2]]
    keep = np.setdiff1d(np.arange(len(faces)), dropped)
    remap = -np.ones(len(faces), dtype=np.int64)
    remap[keep] = np.arange(len(keep))
    kept_neighbours = [[int(remap[g]) for g in neighbours[fi] if remap[g] >= 0] for fi in keep]
    dp_faces_smpl = faces[keep]
    if len(dp_faces_smpl) != NUM_DP_FACES:
        raise RuntimeError(f'expected {NUM_DP_FACES} DensePose faces, got {len(dp_faces_smpl)}')
    labels = 2 * parts[keep] + face_subcharts(neutral_v, dp_faces_smpl, parts[keep], neutral_j)
    before = dp_vertex_count(dp_faces_smpl, labels)
    labels = adjust_dp_vertex_count(dp_faces_smpl, labels, kept_neighbours, NUM_VERTS, NUM_DP_VERTS, rng)
    dp_parts = labels // 2
    logger.info('DensePose vertices: %d from the part borders and chart seams, moved to %d', before, NUM_DP_VERTS)
    dp_faces, dp_to_smpl, u, v = uv_coordinates(neutral_v, dp_faces_smpl, labels, neutral_j)

    down = downsampling(neutral_v, faces)

    out_dir.mkdir(parents=True, exist_ok=True)
    for gender, body in bodies.items():
        np.savez_compressed(out_dir / f'body_{gender}.npz', v_template=body['v_template'].astype(np.float32),
                            shapedirs=body['shapedirs'].astype(np.float32), note=np.array(STANDIN_NOTE))
    np.savez_compressed(out_dir / 'body_common.npz', faces=faces.astype(np.uint32),
                        weights=weights.astype(np.float32), J_regressor=jreg_dense.astype(np.float32),
                        parents=SMPL_PARENTS, note=np.array(STANDIN_NOTE))
    np.save(out_dir / 'J_regressor_extra.npy', extra.astype(np.float32))
    np.save(out_dir / 'J_regressor_h36m.npy', h36m.astype(np.float32))
    note = np.array(STANDIN_NOTE)
    np.savez(out_dir / 'smpl_mean_params.npz', **mean_params(), standin_note=note)
    np.savez(out_dir / 'mesh_downsampling.npz', **down, standin_note=note)
    uv_dir = out_dir / 'UV_data'
    uv_dir.mkdir(exist_ok=True)
    save_mat_deterministic(uv_dir / 'UV_Processed.mat', {
        'All_FaceIndices': dp_parts.reshape(-1, 1).astype(np.float64),
        'All_Faces': (dp_faces + 1).astype(np.float64),
        'All_U_norm': u.reshape(-1, 1), 'All_V_norm': v.reshape(-1, 1),
        'All_vertices': (dp_to_smpl + 1).reshape(1, -1).astype(np.float64),
        'standin_note': STANDIN_NOTE,
    })
    report = {
        'seed': seed, 'samples_per_gender': num_samples,
        'anny_version': __import__('anny').__version__,
        'num_verts': NUM_VERTS, 'num_faces': int(len(faces)),
        'shape_variance_explained': {g: b['explained'] for g, b in bodies.items()},
        'height_range_m': {g: b['height_range'] for g, b in bodies.items()},
        'joint_regressor_rms_mm': {'max': float(1000 * jerr.max()), 'mean': float(1000 * jerr.mean())},
        'dp_vertices_from_borders': int(before), 'landmarks': {k: LANDMARK_VERTS[k] for k in chosen},
    }
    (out_dir / 'STANDIN.md').write_text(STANDIN_MD)
    (out_dir / 'build_report.json').write_text(json.dumps(report, indent=1) + '\n')
    if preview is not None:
        for path in render_previews(preview, neutral_v, faces, weights, neutral_j):
            logger.info('preview %s', path)
    logger.info('done in %.1f s', time.time() - t0)
    return report


def main(argv: list[str] | None = None) -> int:
    """Console entry (utils/cli.py convention); returns the exit status."""
    return cli.run_main(lambda: _run(argv), prog='tools.make_standin_body')


def _run(argv: list[str] | None) -> None:
    parser = cli.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='assets/standin', help='output folder (committed sources)')
    parser.add_argument('--samples', type=int, default=300, help='random adult bodies per gender for the shape space')
    parser.add_argument('--seed', type=int, default=0, help='random seed of the phenotype samples')
    parser.add_argument('--preview', default=None, help='also render front/side PNGs of the neutral body here')
    args = parser.parse_args(argv)
    cli.check_min('--samples', args.samples, 2)
    cli.check_min('--seed', args.seed, 0)
    cli.check_writable_dir(args.out, '--out')
    if args.preview:
        cli.check_writable_dir(args.preview, '--preview')
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    os.environ.setdefault('ANNY_CACHE_DIR', str(pathlib.Path.home() / '.cache' / 'anny'))
    build(pathlib.Path(args.out), args.samples, args.seed, pathlib.Path(args.preview) if args.preview else None)


if __name__ == '__main__':
    sys.exit(main())
