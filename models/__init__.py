"""PyMAF models: the mesh-alignment-feedback regressor and the HMR/SPIN baseline."""
from models.hmr import hmr
from models.pymaf_net import pymaf_net

__all__ = ['hmr', 'pymaf_net']
