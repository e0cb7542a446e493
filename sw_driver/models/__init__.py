"""Quantized integer network graphs: ResNet-18/50 with synthetic weights, SCALE-Sim and ONNX imports."""

from .graph import Add, Conv, GlobalAvgPool, Graph, Linear, MaxPool, parse_selection
from .resnet import RESNET_LAYOUTS, build_resnet, resnet18, resnet50

__all__ = [
    "Add", "Conv", "GlobalAvgPool", "Graph", "Linear", "MaxPool", "parse_selection",
    "RESNET_LAYOUTS", "build_resnet", "resnet18", "resnet50",
]
