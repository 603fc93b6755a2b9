"""The networks: EDSR, IGNN (with every ablation switch) and the non-local baseline.

``build(name, scale, **overrides)`` makes a fresh network, ``load_official`` loads a released IGNN checkpoint,
``save`` / ``load`` handle the kit's own checkpoints. Importing this package does not import engine or lab
code.
"""

from ignn_lab.models import edsr, ignn  # noqa: F401  (register the builders)
from ignn_lab.models.aggregation import GraphAggregation, graph_aggregate
from ignn_lab.models.checkpoint import load, save
from ignn_lab.models.config import EDSRConfig, GraphConfig, IGNNConfig, model_config_from_dict
from ignn_lab.models.edsr import EDSR
from ignn_lab.models.ignn import IGNN
from ignn_lab.models.nonlocal_block import NonLocalBlock
from ignn_lab.models.official import load_official
from ignn_lab.models.registry import build, get_model, list_models, register_model

__all__ = ["EDSR", "EDSRConfig", "GraphAggregation", "GraphConfig", "IGNN", "IGNNConfig", "NonLocalBlock",
           "build", "get_model", "graph_aggregate", "list_models", "load", "load_official",
           "model_config_from_dict", "register_model", "save"]
