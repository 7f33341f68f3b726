"""skconv: convolutional neural network estimators for scikit-learn."""

try:
    from ._kernels._openmp_helpers import openmp_enabled
except ImportError as exc:  # e.g. a source checkout without built extensions
    from ._build_check import raise_not_built

    raise_not_built(exc)

__version__ = "0.2.0.dev0"

from ._classifier import ConvNetClassifier  # noqa: E402
from ._regressor import ConvNetRegressor  # noqa: E402
from ._kernels import _gemm  # noqa: E402
from .ops import SIMD_PATHS, simd_path  # noqa: E402
from ._engine import effective_n_threads  # noqa: E402
from . import architectures  # noqa: E402,F401  (skconv.architectures after import skconv)


def show_config():
    """Print how the kernels were built and how many threads they would use now."""
    print(f"skconv {__version__}")
    print(f"  OpenMP: {'enabled' if openmp_enabled() else 'disabled (kernels run serially)'}")
    print(f"  threads used by the kernels now: {effective_n_threads()}")
    print(f"  SIMD path: {simd_path()} (of {', '.join(p for p in SIMD_PATHS if _gemm.cpu_supports(p))}"
          " on this CPU; SKCONV_SIMD forces one)")


__all__ = ["ConvNetClassifier", "ConvNetRegressor", "show_config", "__version__"]
