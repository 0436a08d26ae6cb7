"""The numeric core: kernels, padding, shapes, colour, pixels. NumPy only: no I/O, no click."""
