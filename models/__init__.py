"""PyMAF models: the mesh-alignment-feedback regressor (`pymaf_net`) and the HMR/SPIN baseline (`hmr`),
their backbones (`pose_resnet`, `hrnet`), heads (`maf_extractor`, `iuv_predictor`), the SMPL body model
(`smpl`) and building a network from a checkpoint (`build`).

May import: `core.constants`, `core.path_config`, `core.cfgs`'s builders and `utils`. Never `datasets`,
the application modules of `core`, a script or a shared config: networks are built from the config
node they are given.
"""
from models.hmr import hmr
from models.pymaf_net import pymaf_net

__all__ = ['hmr', 'pymaf_net']
