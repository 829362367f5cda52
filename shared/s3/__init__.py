"""Object storage: the S3 client (``storage``) and the key layout (``keys``)."""
