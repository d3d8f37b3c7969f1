#!/usr/bin/python3
"""Exports the models bench/compare_onnxruntime.py times for issue 7 that are too large to commit.

Written at bench time into OUTDIR (default /tmp/kiln-bench-models):
  bert_encoder/model.onnx  a BERT-base-like encoder: 4 layers, hidden 256, 4 heads, FFN 1024, GELU (erf form),
                           post-LayerNorm; input token ids int64 [1, 128] (PyTorch export, opset 13).
  lstm/model.onnx          a 2-layer LSTM, hidden 128, input 64, seq 32, batch 1 (PyTorch nn.LSTM export).
  identity/model.onnx      Identity on 4 floats: the floor of a runtime's per-call overhead.

usage: make_bench_models.py [OUTDIR]
"""
import os
import sys

import onnx
import torch
from onnx import TensorProto, helper


class Layer(torch.nn.Module):
    """One BERT layer written out as HuggingFace's BertLayer computes it (post-LayerNorm, GELU erf form)."""

    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.heads, self.dh = heads, hidden // heads
        self.q, self.k, self.v = (torch.nn.Linear(hidden, hidden) for _ in range(3))
        self.o = torch.nn.Linear(hidden, hidden)
        self.ln1, self.ln2 = torch.nn.LayerNorm(hidden), torch.nn.LayerNorm(hidden)
        self.up, self.down = torch.nn.Linear(hidden, ffn), torch.nn.Linear(ffn, hidden)

    def split(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.dh).transpose(1, 2)

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = self.split(self.q(x)), self.split(self.k(x)), self.split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / (self.dh ** 0.5)
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).transpose(1, 2).reshape(b, s, h)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.down(torch.nn.functional.gelu(self.up(x))))


class Encoder(torch.nn.Module):
    def __init__(self, vocab=1000, hidden=256, heads=4, layers=4, ffn=1024, seq=128):
        super().__init__()
        self.tok = torch.nn.Embedding(vocab, hidden)
        self.pos = torch.nn.Parameter(torch.randn(1, seq, hidden) * 0.02)
        self.layers = torch.nn.ModuleList(Layer(hidden, heads, ffn) for _ in range(layers))
        self.head = torch.nn.Linear(hidden, 2)

    def forward(self, ids):
        x = self.tok(ids) + self.pos[:, :ids.shape[1]]
        for layer in self.layers:
            x = layer(x)
        return self.head(x[:, 0])


def export_encoder(path):
    torch.manual_seed(0)
    model = Encoder().eval()
    ids = torch.randint(0, 1000, (1, 128))
    with torch.no_grad():
        torch.onnx.export(model, (ids,), path, input_names=["input_ids"], output_names=["logits"],
                          opset_version=13)


def export_lstm(path):
    torch.manual_seed(0)
    model = torch.nn.LSTM(64, 128, num_layers=2, batch_first=True).eval()
    x = torch.randn(1, 32, 64)
    with torch.no_grad():
        torch.onnx.export(model, (x,), path, input_names=["x"], output_names=["y", "h", "c"], opset_version=13)


def export_identity(path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/kiln-bench-models"
    for name, export in (("bert_encoder", export_encoder), ("lstm", export_lstm), ("identity", export_identity)):
        os.makedirs(os.path.join(out, name), exist_ok=True)
        export(os.path.join(out, name, "model.onnx"))
        print(os.path.join(out, name, "model.onnx"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
