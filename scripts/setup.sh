#!/bin/sh
# setup.sh — README command 1: install dependencies, build kiln, run it on the bundled example model, then start
# `kiln serve` on the bundled example repository (examples/repository) and print a curl line to try it.
#
# The server runs in the foreground (Ctrl-C stops it) only when stdin is a terminal. Otherwise (a script, CI)
# it is started in the background on its own, answers one request to show it works, and setup.sh returns:
# the server keeps running (log: build/kiln-serve.log; stop it with `kill $(cat build/kiln-serve.pid)`).
# KILN_SERVE=0 skips the server; KILN_PORT picks its port (default 8000).
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

[ "${KILN_SERVE:-1}" = 0 ] && exit 0
if ! build/kiln serve --help >/dev/null 2>&1; then
    echo "(kiln was built without 'serve': libmicrohttpd-dev is missing)"
    exit 0
fi
port=${KILN_PORT:-8000}
try="curl -s localhost:$port/v2/models/breast_cancer_mlp/infer -d @examples/request.json"
echo
echo "== kiln serve --model-repository examples/repository --port $port"
if [ -t 0 ]; then
    echo "   try it from another terminal (Ctrl-C here stops the server):"
    echo "   $try"
    exec build/kiln serve --model-repository examples/repository --port "$port"
fi
if [ -f build/kiln-serve.pid ] && kill -0 "$(cat build/kiln-serve.pid)" 2>/dev/null; then
    kill "$(cat build/kiln-serve.pid)" # the one a previous setup.sh left running
    sleep 1
fi
nohup build/kiln serve --model-repository examples/repository --port "$port" </dev/null >build/kiln-serve.log 2>&1 &
echo $! >build/kiln-serve.pid
i=0
until grep -q "kiln serve: ready" build/kiln-serve.log 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$(cat build/kiln-serve.pid)" 2>/dev/null; then
        echo "   kiln serve did not start:"
        sed 's/^/   /' build/kiln-serve.log
        exit 0 # the build and the example worked; the port may simply be taken (KILN_PORT=...)
    fi
    sleep 0.1
done
echo "   running in the background (pid $(cat build/kiln-serve.pid), log build/kiln-serve.log;"
echo "   stop it with: kill \$(cat build/kiln-serve.pid)). Try it:"
echo "   $try"
if command -v curl >/dev/null 2>&1; then
    echo
    $try
    echo
fi
