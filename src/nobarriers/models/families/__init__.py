"""The built-in model families, one module each (each defines ``FAMILY``)."""
