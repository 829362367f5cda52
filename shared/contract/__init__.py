"""The contract: what the API, the worker and a client agree on, with no I/O.

Settings (``settings``, ``settingvalues``), the processing options (``options``,
``optionvalues``, ``catalogue``), what a job may cost (``limits``), which input
bytes are refused (``imagecheck``, ``maskcheck``), the Celery task names and
settings (``tasks``), and every API shape (``shapes``). The errors and their codes
are ``shared.errors``, below every package.
"""
