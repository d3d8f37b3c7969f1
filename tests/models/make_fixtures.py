#!/usr/bin/python3
"""Exports the test models kiln is checked against onnxruntime with.

Two sets:
  small  tiny models committed under tests/models/data/ together with their inputs and onnxruntime's outputs
         (an MLP, a CNN with every common layer, a two-layer transformer-encoder text classifier with symbolic
         batch and sequence dims, a small U-Net with upsampling);
  zoo    torchvision classifiers (resnet18, mobilenet_v2, squeezenet1_1, shufflenet_v2_x1_0,
         efficientnet_b0) exported at test time into the build tree: tens of MB each, too big to commit.

Weights are random (seeded): pretrained weights need a download, and the numbers being compared do not need
them. Every model is exported with PyTorch's ONNX exporter at opset 13; onnxruntime's outputs (through
ort_run.js) become the expected outputs, and they are checked against PyTorch's own before being kept.

usage: make_fixtures.py small OUTDIR [--ort-path NODE_MODULES]
       make_fixtures.py zoo OUTDIR [--ort-path NODE_MODULES] [--only NAME]
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fixture_io import save_with_onnxruntime_outputs

OPSET = 13
HERE = os.path.dirname(os.path.abspath(__file__))


# ---- small models -------------------------------------------------------------------------------------------

class MLP(nn.Module):
    """The 30-64-32-2 MLP of the benchmarks: tabular scoring at its simplest."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(30, 64), nn.Linear(64, 32), nn.Linear(32, 2)

    def forward(self, x):
        return torch.softmax(self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x))))), dim=1)


class TinyCNN(nn.Module):
    """Conv with padding/stride/groups, BatchNorm, ReLU6, depthwise conv, hard-swish, max and average pooling,
    squeeze-excite (sigmoid gating), a residual add, global pooling, flatten, linear."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.pw = nn.Conv2d(16, 24, 1)
        self.grouped = nn.Conv2d(24, 24, 3, padding=2, dilation=2, groups=4)
        self.se_reduce, self.se_expand = nn.Conv2d(24, 8, 1), nn.Conv2d(8, 24, 1)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg = nn.AvgPool2d(2)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.pw(self.dw(self.stem(x)))
        x = x + F.leaky_relu(self.grouped(x), 0.1)
        s = torch.sigmoid(self.se_expand(F.silu(self.se_reduce(x.mean((2, 3), keepdim=True)))))
        x = self.avg(self.pool(x * s))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class EncoderLayer(nn.Module):
    """A BERT-style post-norm encoder layer written out, so the export has the MatMul/Softmax/LayerNorm/GELU
    pattern exporters produce for BERT (torch's fused encoder kernel does not export)."""

    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.ffn1, self.ffn2 = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)

    def forward(self, x, mask_bias):
        batch, seq, hidden = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        split = lambda t: t.reshape(batch, seq, self.heads, hidden // self.heads).transpose(1, 2)
        q, k, v = split(q), split(k), split(v)
        scores = q @ k.transpose(-1, -2) / float(hidden // self.heads) ** 0.5 + mask_bias
        context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(batch, seq, hidden)
        x = self.norm1(x + self.out(context))
        return self.norm2(x + self.ffn2(F.gelu(self.ffn1(x))))


class TextClassifier(nn.Module):
    """Two-layer transformer-encoder text classifier: token + position embeddings, an attention mask from the
    padding id, mean pooling over real tokens, a linear head. Batch and sequence length are symbolic."""

    def __init__(self, vocab=1000, hidden=64, heads=4, layers=2, classes=3, max_len=128):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, hidden), nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.layers = nn.ModuleList([EncoderLayer(hidden, heads, 4 * hidden) for _ in range(layers)])
        self.head = nn.Linear(hidden, classes)

    def forward(self, input_ids):
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).unsqueeze(0)
        x = self.norm(self.tokens(input_ids) + self.positions(positions))
        keep = (input_ids != 0).float()
        mask_bias = ((1.0 - keep) * -10000.0)[:, None, None, :]
        for layer in self.layers:
            x = layer(x, mask_bias)
        pooled = (x * keep.unsqueeze(-1)).sum(1) / keep.sum(1, keepdim=True).clamp(min=1.0)
        return self.head(pooled)


class TinyUNet(nn.Module):
    """Encoder-decoder with strided convs, transposed conv, nearest and bilinear upsampling and skip concats:
    the shape of segmentation heads such as PaddleOCR's DB detector."""

    def __init__(self):
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.up1 = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.fuse = nn.Conv2d(16, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(d1)
        u1 = torch.cat([self.up1(d2), F.interpolate(d2[:, :8], scale_factor=2.0, mode="nearest")], 1)
        f = torch.relu(self.fuse(u1)) + d1
        return torch.sigmoid(F.interpolate(self.head(f), scale_factor=2.0, mode="bilinear", align_corners=False))


def small_models(rng):
    ids = rng.integers(1, 1000, size=(2, 16)).astype(np.int64)
    ids[1, 11:] = 0  # padding
    return {
        "mlp": (MLP(), [rng.standard_normal((4, 30)).astype(np.float32)], ["input"], ["probabilities"],
                {"input": {0: "batch"}, "probabilities": {0: "batch"}}),
        "tiny_cnn": (TinyCNN(), [rng.standard_normal((2, 3, 32, 32)).astype(np.float32)], ["image"], ["logits"], None),
        "text_classifier": (TextClassifier(), [ids], ["input_ids"], ["logits"],
                            {"input_ids": {0: "batch", 1: "sequence"}, "logits": {0: "batch"}}),
        "tiny_unet": (TinyUNet(), [rng.standard_normal((1, 3, 64, 48)).astype(np.float32)], ["image"], ["mask"], None),
    }


# ---- zoo models ---------------------------------------------------------------------------------------------

ZOO = ["resnet18", "mobilenet_v2", "squeezenet1_1", "shufflenet_v2_x1_0", "efficientnet_b0"]


def zoo_models(rng, only):
    import torchvision
    models = {}
    for name in ZOO:
        if only and name != only:
            continue
        model = getattr(torchvision.models, name)(weights=None)
        models[name] = (model, [rng.standard_normal((1, 3, 224, 224)).astype(np.float32)], ["input"], ["logits"], None)
    return models


# ---- export and reference outputs ---------------------------------------------------------------------------

def randomize_batchnorm(model, generator):
    """Fresh BatchNorm layers are identities (mean 0, var 1); give them statistics so folding them is tested."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5, generator=generator)
            m.running_var.uniform_(0.5, 2.0, generator=generator)
            m.weight.data.uniform_(0.5, 1.5, generator=generator)
            m.bias.data.uniform_(-0.2, 0.2, generator=generator)


def export(name, spec, out_dir, ort_path):
    model, inputs, input_names, output_names, dynamic_axes = spec
    model.eval()
    directory = os.path.join(out_dir, name)
    os.makedirs(directory, exist_ok=True)
    model_path = os.path.join(directory, "model.onnx")
    tensors = tuple(torch.from_numpy(x) for x in inputs)
    with torch.no_grad():
        torch_outputs = model(*tensors)
        torch.onnx.export(model, tensors, model_path, opset_version=OPSET, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic_axes, do_constant_folding=True)
    expected = save_with_onnxruntime_outputs(directory, inputs, ort_path)[0]
    reference = torch_outputs.numpy()
    if not np.allclose(expected, reference, rtol=1e-3, atol=1e-4):
        sys.exit("%s: onnxruntime and PyTorch disagree (max diff %g); not keeping it" % (
            name, np.abs(expected - reference).max()))
    print("%-20s %8.1f KiB  onnxruntime == PyTorch within 1e-3" % (name, os.path.getsize(model_path) / 1024))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set", choices=["small", "zoo"])
    parser.add_argument("out_dir")
    parser.add_argument("--ort-path", help="node_modules directory holding onnxruntime-node")
    parser.add_argument("--only", help="export just this model")
    args = parser.parse_args()
    torch.manual_seed(20261126)
    generator = torch.Generator().manual_seed(7)
    rng = np.random.default_rng(20261126)
    specs = small_models(rng) if args.set == "small" else zoo_models(rng, args.only)
    for name, spec in specs.items():
        if args.only and name != args.only:
            continue
        randomize_batchnorm(spec[0], generator)
        export(name, spec, args.out_dir, args.ort_path)


if __name__ == "__main__":
    main()
