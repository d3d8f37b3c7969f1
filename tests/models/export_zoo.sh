#!/bin/sh
# export_zoo.sh PYTHON OUTDIR NODE_MODULES — exports the torchvision test models (once; reused while present)
# with onnxruntime's outputs beside them. Exits 77 (CTest: skipped) when onnxruntime-node is not installed.
set -eu
python=$1 out=$2 modules=$3
here=$(dirname "$0")
if [ ! -d "$modules/onnxruntime-node" ]; then
    echo "onnxruntime-node is not installed in $modules: skipping the model zoo (scripts/install-deps.sh installs it)"
    exit 77
fi
if [ -f "$out/.complete" ]; then
    echo "model zoo already exported in $out"
    exit 0
fi
"$python" "$here/make_fixtures.py" zoo "$out" --ort-path "$modules"
touch "$out/.complete"
