"""Session stores: one module per backend, each named ``<Tech>SessionStore``."""
