#!/usr/bin/env bash
# Run the tests on the AVX-512 path of the GEMM, on a CPU without AVX-512
# (.ci/run does the same on the installed package).
#
# Builds the kernels into a scratch copy of the source tree with
# SKCONV_EMULATE_AVX512=1 (tools/avx512_emulation.h: the few AVX-512 intrinsics
# the micro-kernels use, in plain C), then runs the kernel and estimator tests
# there with SKCONV_SIMD=avx512. The tests that compare every path (the
# bit-identity ones) then compare this one as well: its tile shapes, edges and
# packing are exercised even where no AVX-512 CPU is at hand. On a CPU with
# AVX-512 the suite already runs the real path, and this adds the emulated one.
#
#   bash tools/avx512_emulated.sh [extra pytest args]
#
# Needs gcc (or clang) and the test extras installed in the current Python.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src/setup.py" "$src/pyproject.toml" "$src/README.md" "$src/skconv" "$src/tests" "$src/tools" \
    "$work/"
find "$work/skconv" -name '*.so' -delete
cd "$work"
SKCONV_EMULATE_AVX512=1 python setup.py -q build_ext --inplace -j 2 > build.log 2>&1 || { tail -30 build.log; exit 1; }
export PYTHONPATH="$work" SKCONV_SIMD=avx512
python -P -c "
import skconv
from skconv._kernels import _gemm
assert skconv.ops.simd_path() == 'avx512', skconv.ops.simd_path()
print('emulated avx512 path; tiles (float, double):', _gemm.tile_shape('f'), _gemm.tile_shape('d'))
"
python -m pytest -q -p no:cacheprovider tests/test_ops.py tests/test_determinism.py \
    tests/test_network.py tests/test_classifier.py "$@"
echo "emulated AVX-512 path: the tests pass"
