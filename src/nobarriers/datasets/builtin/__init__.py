"""The built-in datasets, one module each (each defines ``SOURCES``, a list of sources)."""
