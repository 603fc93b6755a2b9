"""The cross-scale graph engine: tensors in, tensors out (torch only; faiss optional)."""

from ignn_lab.graph.knn import CrossScaleGraph, cross_scale_knn
from ignn_lab.graph.patches import calc_padding, im2patch, im2patch_rows, patch2im
from ignn_lab.graph.window import window_table

__all__ = ["CrossScaleGraph", "cross_scale_knn", "calc_padding", "im2patch", "im2patch_rows", "patch2im",
           "window_table"]
