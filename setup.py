"""Build the Cython kernels.

Every Cython directive is set here, none in the .pyx files, so that
``SKCONV_CYTHON_DEBUG=1 pip install .`` builds a variant with bounds and
initialisation checks on for every kernel at once.

OpenMP is used when the compiler accepts ``-fopenmp``; otherwise the kernels
build without it and ``prange`` runs serially.

The kernels are translated by Cython and compiled in parallel, one job per
core (``SKCONV_BUILD_JOBS`` or ``build_ext -j`` choose another count), and each
compiled kernel prints one line: ``pip install -v .`` shows them as they come.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

KERNELS = ["_openmp_helpers", "_gemm", "_im2col", "_conv", "_pool", "_batchnorm", "_augment",
           "_boundary", "_update", "_depthwise", "_global_pool", "_elementwise"]

DEBUG = os.environ.get("SKCONV_CYTHON_DEBUG", "0") not in ("", "0")
NO_OPENMP = os.environ.get("SKCONV_NO_OPENMP", "0") not in ("", "0")
# A test build: the GEMM's AVX-512 path emulated in plain C, so that it runs
# (under SKCONV_SIMD=avx512) on a CPU without AVX-512; see tools/avx512_emulation.h.
EMULATE_AVX512 = os.environ.get("SKCONV_EMULATE_AVX512", "0") not in ("", "0")



def _build_jobs():
    """SKCONV_BUILD_JOBS, or one job per core this process may run on."""
    value = os.environ.get("SKCONV_BUILD_JOBS", "")
    if value:
        if not value.isdigit() or int(value) < 1:
            sys.exit(f"skconv: SKCONV_BUILD_JOBS={value!r} must be a positive integer")
        return int(value)
    if hasattr(os, "sched_getaffinity"):  # a container's or taskset's share, not the host's
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


JOBS = _build_jobs()

VARIANT = ("cython" + ("-debug" if DEBUG else "") + ("-noopenmp" if NO_OPENMP else "")
           + ("-avx512emulated" if EMULATE_AVX512 else ""))

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "nonecheck": DEBUG,
    "embedsignature": True,
}


def _openmp_flags():
    """Return (compile, link) flags for OpenMP, or empty lists if unsupported."""
    if NO_OPENMP:
        return [], []
    flags = ["/openmp"] if sys.platform == "win32" else ["-fopenmp"]
    cc = sysconfig.get_config_var("CC") or "cc"
    code = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "check_openmp.c")
        with open(src, "w") as f:
            f.write(code)
        cmd = cc.split() + flags + [src, "-o", os.path.join(tmp, "a.out")] + flags
        ok = subprocess.run(cmd, capture_output=True).returncode == 0
    except OSError:
        ok = False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not ok:
        print("skconv: the compiler does not support OpenMP; kernels run serially")
        return [], []
    return flags, flags


compile_flags, link_flags = _openmp_flags()
if sys.platform != "win32":
    # every fused multiply-add in the GEMM is explicit (see gemm.h): the
    # compiler must not fuse others, or bits would depend on the build
    compile_flags = compile_flags + ["-ffp-contract=off"]
    # sqrt need not set errno (nothing reads it), so that loops of it vectorise
    compile_flags = compile_flags + ["-fno-math-errno"]
    if not DEBUG:
        compile_flags = compile_flags + ["-O3"]

extensions = [
    Extension(
        f"skconv._kernels.{name}",
        [f"skconv/_kernels/{name}.pyx"],
        include_dirs=[np.get_include(), "skconv/_kernels"] + (["tools"] if EMULATE_AVX512 else []),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
        + ([("SKC_EMULATE_AVX512", None)] if EMULATE_AVX512 else []),
        extra_compile_args=compile_flags,
        extra_link_args=link_flags,
    )
    for name in KERNELS
]


class ParallelBuildExt(build_ext):
    """build_ext that compiles the extensions in parallel and reports each one."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:  # a -j given on the command line wins
            self.parallel = JOBS

    def build_extension(self, ext):
        start = time.perf_counter()
        super().build_extension(ext)
        # pip shows a build's output only with -v: this line is the progress there
        print(f"skconv: compiled {ext.name} in {time.perf_counter() - start:.0f} s", flush=True)


setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=DIRECTIVES,
        # each variant's C files (and so its objects) live apart: no variant
        # reuses another's
        build_dir=os.path.join("build", VARIANT),
        nthreads=JOBS,
    ),
    cmdclass={"build_ext": ParallelBuildExt},
)
