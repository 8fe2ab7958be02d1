#!/usr/bin/env bash
# Fetch the public data files PyMAF needs into the data root (data/, or $PYMAF_DATA_DIR).
# Files that already exist are skipped. Licensed files (SMPL, datasets) must be obtained by hand:
# see data/README.md. Nothing in the tests or CI needs this script.
set -euo pipefail
DATA="${PYMAF_DATA_DIR:-$(cd "$(dirname "$0")" && pwd)/data}"
mkdir -p "$DATA/UV_data" "$DATA/pretrained_model" "$DATA/smpl"

fetch() {  # fetch URL DEST
    if [ -e "$2" ]; then echo "have $2"; return; fi
    echo "downloading $1"
    curl -fL --retry 3 -o "$2.part" "$1" && mv "$2.part" "$2"
}

# DensePose UV data (UV_Processed.mat, UV_symmetry_transforms.mat).
if [ ! -e "$DATA/UV_data/UV_Processed.mat" ]; then
    fetch https://dl.fbaipublicfiles.com/densepose/densepose_uv_data.tar.gz "$DATA/densepose_uv_data.tar.gz"
    tar -xzf "$DATA/densepose_uv_data.tar.gz" -C "$DATA/UV_data" --strip-components=1
    rm -f "$DATA/densepose_uv_data.tar.gz"
fi
# GraphCMR mesh downsampling matrices.
fetch https://github.com/nkolot/GraphCMR/raw/master/data/mesh_downsampling.npz "$DATA/mesh_downsampling.npz"
# ImageNet ResNet-50 weights (training only).
fetch https://download.pytorch.org/models/resnet50-19c8e357.pth "$DATA/pretrained_model/resnet50-19c8e357.pth"

cat <<MSG

Still to obtain by hand (licences or registration), see data/README.md:
  - SMPL: $DATA/smpl/SMPL_NEUTRAL.pkl, SMPL_MALE.pkl, SMPL_FEMALE.pkl
  - SPIN data: J_regressor_extra.npy, J_regressor_h36m.npy, smpl_mean_params.npz, dataset_extras/*.npz
  - the released checkpoint: $DATA/pretrained_model/PyMAF_model_checkpoint.pt
MSG
