"""The package version, in one place: ``wgpy.__version__``, the CLI and the native build's stamp read it."""

__version__ = "0.1.0"
