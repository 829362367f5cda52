"""Outbound network: which addresses Cutout may contact (``address``, the SSRF
policy), the guarded HTTP fetch (``guard``), and webhook events, their signature
and delivery (``webhooks``; the secrets are kept by ``shared.stores``).
"""
