"""What the API and the worker agree on, grouped by what it is, in layers.

- the base: ``errors`` (every error and its code), ``ids``, and two helpers of the
  worker and the command line (``atomicfile``, ``logs``);
- ``redis`` (clients, Sentinel, TLS), ``net`` (SSRF policy, guarded fetch, webhooks),
  ``s3`` (object storage), ``onnx`` (model files): each on the base only;
- ``contract`` (settings, options, limits, input checks, task names, API shapes);
- ``stores`` (the Redis stores), on everything below.

A package imports its own modules and the layers below it
(tests/unit/test_structure.py). This package imports only the standard library and
third-party packages, never ``api``, ``worker`` or ``cutout``.
"""
