"""Reaching Redis: clients and the one translation of their errors (``errors``),
Sentinel URLs (``sentinel``) and TLS files (``tls``, which also gives S3 its CA).
"""
