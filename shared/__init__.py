"""What the API and the worker agree on: settings, errors, options, records, storage, tasks.

This package imports only the standard library and third-party packages, never
``api`` or ``worker``.
"""
