"""Cython kernels. Private: use :mod:`skconv.ops`, which validates arguments first."""
