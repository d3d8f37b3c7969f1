#!/bin/sh
# test.sh — README command 2: the whole test suite, as CI runs it.
#
#   1. a Release build and every test: unit (cmocka), ONNX node conformance through `kiln run`, exported models
#      against onnxruntime, malformed-model fuzzing;
#   2. the same suite built with AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. an aarch64 cross build whose unit tests and a model test run under qemu-user.
#
# Installs missing dependencies first (scripts/install-deps.sh), so it also works on a fresh machine.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc)
scripts/install-deps.sh

section() { printf '\n==== %s\n' "$*"; }

section "Release build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

section "AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"

section "aarch64 cross build, tests under qemu-aarch64"
cmake -S . -B build-aarch64 -DCMAKE_BUILD_TYPE=Release -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake >/dev/null
cmake --build build-aarch64 -j"$jobs"
ctest --test-dir build-aarch64 --output-on-failure -j"$jobs" -L unit
/usr/bin/python3 tests/models/run_model_tests.py \
    --kiln "cmake/qemu-aarch64-run build-aarch64/kiln" tests/models/data build/model-zoo/resnet18

section "all tests passed"
