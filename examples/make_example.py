#!/usr/bin/python3
"""Builds the example model kiln's README runs: a 30-64-32-2 MLP classifying breast tumours as malignant or
benign from the 30 measurements of scikit-learn's Wisconsin breast cancer dataset.

The model is trained with PyTorch (seeded, a few seconds), with the feature standardisation folded into it so
it takes raw measurements, and exported to ONNX (opset 13, symbolic batch dim) as examples/mlp/model.onnx.
examples/mlp/input.npy holds four held-out patients; the script prints what the model says about them.

usage: /usr/bin/python3 examples/make_example.py
"""
import os

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

HERE = os.path.dirname(os.path.abspath(__file__))


class Classifier(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32))
        self.layers = nn.Sequential(nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 2))

    def forward(self, features):
        return torch.softmax(self.layers((features - self.mean) / self.std), dim=1)


def main():
    torch.manual_seed(0)
    data = load_breast_cancer()
    x, y = data.data.astype(np.float32), data.target.astype(np.int64)  # target 1 = benign
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    model = Classifier(x_train.mean(0), x_train.std(0) + 1e-6)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    inputs, labels = torch.from_numpy(x_train), torch.from_numpy(y_train)
    for _ in range(40):
        optimizer.zero_grad()
        loss = nn.functional.nll_loss(torch.log(model(inputs) + 1e-9), labels)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean()
    out = os.path.join(HERE, "mlp")
    os.makedirs(out, exist_ok=True)
    torch.onnx.export(model, torch.from_numpy(x_test[:1]), os.path.join(out, "model.onnx"), opset_version=13,
                      input_names=["features"], output_names=["probabilities"],
                      dynamic_axes={"features": {0: "batch"}, "probabilities": {0: "batch"}})
    sample = x_test[:4]
    np.save(os.path.join(out, "input.npy"), sample)
    with torch.no_grad():
        probabilities = model(torch.from_numpy(sample)).numpy()
    print("held-out accuracy %.3f" % accuracy)
    for p, label in zip(probabilities, y_test[:4]):
        print("P(malignant)=%.4f P(benign)=%.4f  truth: %s" % (p[0], p[1], data.target_names[label]))


if __name__ == "__main__":
    main()
