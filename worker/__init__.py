"""The worker side: Celery tasks and the inference engine (``worker.engine``)."""
