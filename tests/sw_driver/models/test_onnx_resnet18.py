"""ResNet-18 at ImageNet shapes (random weights), quantized by onnxruntime, through
``systolic run`` on verilator, against onnxruntime (slow: run with ``-m slow``)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from sw_driver.cli import main  # noqa: E402
from sw_driver.models.onnx import load_onnx_model  # noqa: E402
from tests.sw_driver.models.test_onnx_quantized import (  # noqa: E402
    assert_agreement, export_float, lsb_difference, onnxruntime_output, per_layer_differences,
    quantize)

nn = torch.nn
IMAGE = (1, 3, 224, 224)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; a 1x1 stride-2 projection when the shape changes."""

    def __init__(self, inputs, outputs, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inputs, outputs, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(outputs)
        self.conv2 = nn.Conv2d(outputs, outputs, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(outputs)
        self.downsample = None
        if stride != 1 or inputs != outputs:
            self.downsample = nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride, bias=False),
                                            nn.BatchNorm2d(outputs))

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision's ``resnet18`` layout: 7x7/2 stem, 3x3/2 max pool, four stages of two
    basic blocks (64, 128, 256, 512 channels), global average pool, 1000-way fc."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, inputs = [], 64
        for outputs, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            stages += [BasicBlock(inputs, outputs, stride), BasicBlock(outputs, outputs, 1)]
            inputs = outputs
        self.layers = nn.Sequential(*stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(self.layers(x)), 1))


@pytest.mark.slow
# onnxruntime 1.32's QOperator quantizer fails on this export (AttributeError in
# _adjust_weight_scale_for_int32_bias, per tensor and per channel): QDQ only.
@pytest.mark.parametrize("fmt,activation,per_channel", [("QDQ", "int8", True),
                                                        ("QDQ", "uint8", False)])
def test_resnet18_on_verilator_matches_onnxruntime(tmp_path, fmt, activation, per_channel,
                                                   capsys):
    float_path = export_float(ResNet18(), IMAGE, tmp_path / "resnet18.onnx")
    path = quantize(float_path, tmp_path / "q.onnx", fmt, activation, per_channel, IMAGE)
    x = np.random.default_rng(3).standard_normal(IMAGE).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code = main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--output",
                 str(tmp_path / "y.npy"), "--report", str(tmp_path / "report"),
                 "--backend", "verilator", "--array", "16x16"])
    assert code == 0
    ours, theirs = np.load(tmp_path / "y.npy"), onnxruntime_output(path, x)
    model = load_onnx_model(path)
    difference = assert_agreement(ours, theirs, model.output_scale)
    layers = per_layer_differences(path, model, x, activation)
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    with capsys.disabled():
        print(f"\n{fmt} {activation} per-channel {per_channel}: output max {difference.max()} LSB, "
              f"{np.count_nonzero(difference)}/{difference.size} differ; cycles "
              f"{summary['cycles']}; per layer (max LSB, count, size): {layers}")
    assert max(lsb for lsb, _, _ in layers.values()) <= 1
    assert lsb_difference(ours, theirs, model.output_scale).max() <= 2
