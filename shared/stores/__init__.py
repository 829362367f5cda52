"""The Redis stores: every key Cutout keeps in Redis is read and written here.

The job and batch records (``jobs``, its Lua scripts ``jobscripts``, its port
``jobstore``), the worker's view (``workerstore``, with its parts ``sweeps``,
``fair``, ``customlines`` on ``redisops``), corrections, custom models, webhook
secrets, idempotency keys, rate limits, telemetry and the monitor's reads. Each
module's docstring ends with the side that uses it (the API, the worker, or both);
tests/unit/test_structure.py checks it against the imports. No module of
``worker/`` touches Redis but through these.
"""
