"""The Flask application: routes, auth, request validation, OpenAPI, metrics.

Build it with :func:`api.app.create_app`; nothing is created at import time, so
``gunicorn 'api.app:create_app()'`` and the tests each get their own app and clients.
The API never imports ``worker``: it enqueues by task name through ``shared.contract.tasks``.
"""
