#!/usr/bin/env bash
# Run the kernel tests (the GEMM's included) under AddressSanitizer, and the
# estimator tests whose fits run the fused training steps and the batch gather.
#
# Builds the Cython kernels with gcc's -fsanitize=address into a scratch copy
# of the source tree, then runs the kernel tests there with libasan preloaded
# (Python itself is not instrumented, but every malloc, numpy's buffers
# included, gets ASan's redzones, so an out-of-bounds read or write in a
# kernel aborts the run with a report).
#
#   bash tools/asan.sh [extra pytest args]
#
# Needs gcc with libasan (Debian: libasan8, pulled in by gcc) and the test
# extras installed in the current Python.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$src/setup.py" "$src/pyproject.toml" "$src/README.md" "$src/skconv" "$src/tests" "$work/"
find "$work/skconv" -name '*.so' -delete
cd "$work"
CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g -O1" LDFLAGS="-fsanitize=address" \
    python setup.py -q build_ext --inplace > build.log 2>&1 || { tail -30 build.log; exit 1; }
libasan=$(gcc -print-file-name=libasan.so)
echo "libasan: $libasan"
# detect_leaks=0: CPython's own allocations at exit are not ours to report
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1" PYTHONPATH="$work"

# First prove the instrumentation bites: a write past the end of dx, straight
# into the kernel (skconv.ops would refuse this argmax), must be reported.
if LD_PRELOAD="$libasan" python - > canary.log 2>&1 <<'PY'
import numpy as np
from skconv._kernels import _pool
dx = np.zeros((1, 1, 16))
_pool.max_pool2d_backward(np.ones((1, 1, 1)), np.array([[[16]]], dtype=np.intp), dx, 1)
PY
then
    echo "ASan did not catch a deliberate out-of-bounds write: the build is not instrumented"
    exit 1
fi
grep -q "ERROR: AddressSanitizer" canary.log || { cat canary.log; exit 1; }
echo "canary: ASan reports a deliberate out-of-bounds write"

# the ops' tests, then fits of random architectures, of series and of
# augmented images: the planned training steps (skconv/_plan.py) call the
# kernels with buffers sized apart from the ops'
LD_PRELOAD="$libasan" python -m pytest -q -p no:cacheprovider tests/test_ops.py \
    tests/test_ops_grouped.py tests/test_ops_1d.py tests/test_winograd2d.py tests/test_determinism.py \
    tests/test_fuzz_estimator.py tests/test_training.py tests/test_series.py tests/test_augment.py "$@"
echo "AddressSanitizer: no errors in the kernel and estimator tests"
