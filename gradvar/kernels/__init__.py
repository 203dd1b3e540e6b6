"""The Numba machinery: lazy kernels, generated drivers, RNG, moments."""
