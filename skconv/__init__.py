"""skconv: convolutional neural network estimators for scikit-learn."""

from ._kernels._openmp_helpers import effective_n_threads, openmp_enabled

__version__ = "0.1.0"

from ._classifier import ConvNetClassifier  # noqa: E402
from ._regressor import ConvNetRegressor  # noqa: E402


def show_config():
    """Print how the kernels were built and how many threads they would use now."""
    print(f"skconv {__version__}")
    print(f"  OpenMP: {'enabled' if openmp_enabled() else 'disabled (kernels run serially)'}")
    print(f"  threads used by the kernels now: {effective_n_threads()}")


__all__ = ["ConvNetClassifier", "ConvNetRegressor", "show_config", "__version__"]
