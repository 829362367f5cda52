"""`/v1/batches`, split by concern: `parsing` (pure request reading), `writes` (storage
and records), `pages` (cursor pagination), `zipstream` (results.zip), `routes` (views)."""

from api.batches.routes import bp

__all__ = ["bp"]
