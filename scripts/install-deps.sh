#!/bin/sh
# install-deps.sh — installs everything kiln's build and tests need on Debian 12 (run as root). Idempotent:
# packages already present are not touched, and apt-get update runs only when something is missing.
#
#   build:      build-essential cmake pkg-config
#   unit tests: libcmocka-dev
#   fixtures:   python3-numpy python3-onnx (ONNX node tests), python3-torch python3-torchvision (model exports),
#               python3-sklearn, python3-xgboost (training the example and the tree-model fixtures)
#   kiln batch: zlib1g-dev libzstd-dev (gzip and zstd inputs), zstd (the batch tests compress with it)
#   kiln serve: libmicrohttpd-dev (its HTTP/1.1 server)
#   reference:  onnxruntime-node from npm (the peer kiln's outputs are compared with), Node.js to run it;
#               libxgboost-dev (XGBoost's C API predictor, the tree benchmark's peer)
#   portability: gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user (aarch64 build, tests under qemu), and
#                libcmocka-dev:arm64 (Debian multiarch) for the aarch64 unit tests
set -eu
cd "$(dirname "$0")/.."

# the arm64 cmocka comes from Debian's multiarch archive
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
fi

packages="build-essential cmake pkg-config libcmocka-dev libmicrohttpd-dev python3 python3-numpy python3-onnx python3-torch
python3-torchvision python3-sklearn python3-xgboost libxgboost-dev zlib1g-dev libzstd-dev zstd gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libcmocka-dev:arm64"
command -v node >/dev/null 2>&1 || packages="$packages nodejs"
command -v npm >/dev/null 2>&1 || packages="$packages npm"

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "install-deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# onnxruntime, the reference peer: --ignore-scripts skips a GPU download that cannot work offline
if [ ! -f .cache/npm/node_modules/onnxruntime-node/package.json ]; then
    echo "install-deps: installing onnxruntime-node into .cache/npm"
    mkdir -p .cache/npm
    npm install --silent --no-audit --no-fund --ignore-scripts --prefix .cache/npm onnxruntime-node@1.30.0 >/dev/null
fi
echo "install-deps: all dependencies present"
