#!/bin/sh
# setup.sh — README command 1: install dependencies, build kiln, and run it on the bundled example model.
set -eu
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
echo
echo "== kiln info examples/mlp/model.onnx"
build/kiln info examples/mlp/model.onnx
echo
echo "== kiln run examples/mlp/model.onnx examples/mlp/input.npy"
echo "   (four held-out patients; for each, P(malignant) then P(benign))"
build/kiln run examples/mlp/model.onnx examples/mlp/input.npy
