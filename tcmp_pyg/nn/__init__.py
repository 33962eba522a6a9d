"""Layers and models with prunable weights."""
from tcmp_pyg.nn.compact import CompactAttentionGCN, CompactSTGCN
from tcmp_pyg.nn.conv import Linear, STGraphConv, TemporalConv, spatial_partitions
from tcmp_pyg.nn.models import (MODEL_NAMES, AttentionGCN, STGCN, STGCNBlock,
                                 build_model, model_from_config, model_size,
                                 width_for_params)
from tcmp_pyg.nn.prunable import (ChannelFlow, ChannelGate, FlowModel,
                                  PrunableModule, masked_weight, prunable_weights)
from tcmp_pyg.nn.trajectory import AttentionBlock, TrajectoryGCN

__all__ = [
    'MODEL_NAMES', 'AttentionBlock', 'AttentionGCN', 'TrajectoryGCN', 'build_model', 'model_from_config', 'ChannelFlow', 'ChannelGate', 'FlowModel', 'Linear',
    'PrunableModule', 'STGCN', 'STGCNBlock', 'STGraphConv', 'TemporalConv',
    'masked_weight', 'model_size', 'prunable_weights', 'spatial_partitions',
    'width_for_params',
]
