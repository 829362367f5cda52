"""The ``cutout`` command: one entry point that dispatches to api, worker and local tools."""

__version__ = "0.1.0"
