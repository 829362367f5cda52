"""Object storage on any S3 API through boto3; vendor errors become ours at this edge.

The key layout is shared/s3/keys.py (re-exported here for the callers that import it here).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import IO, Any, Protocol

import boto3
import botocore.exceptions
from botocore.config import Config

from shared.errors import NotFound, PayloadTooLarge, StorageError
from shared.s3.keys import input_key, output_key, upload_key

__all__ = ["S3Storage", "Storage", "input_key", "output_key", "upload_key"]


class Storage(Protocol):
    """What the API and the worker need from object storage (:class:`S3Storage`).

    Missing objects raise :class:`~shared.errors.NotFound`, every other failure
    :class:`~shared.errors.StorageError` (transient); ``ping`` answers False instead.
    """

    def put(self, key: str, data: bytes | IO[bytes], content_type: str) -> None: ...
    def get(self, key: str, max_bytes: int | None = None) -> bytes: ...
    def head(self, key: str) -> dict[str, Any]: ...
    def stream(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def presign_get(self, key: str, expires: int = 300, filename: str | None = None) -> str: ...
    def presign_put(
        self,
        key: str,
        content_type: str,
        expires: int = 900,
        *,
        content_length: int | None = None,
    ) -> str: ...
    def ensure_bucket(self) -> None: ...
    def ping(self) -> bool: ...
    # api/batches: many upload_keys checked by one listing
    def sizes_from(self, prefix: str, first: str, last: str) -> dict[str, int]: ...


class S3Storage:
    """:class:`Storage` on S3. Missing objects raise NotFound; everything else StorageError."""

    def __init__(
        self,
        endpoint_url: str | None,
        bucket: str,
        region: str = "us-east-1",
        *,
        connect_timeout: float = 5,
        read_timeout: float = 30,
        max_attempts: int = 3,
        access_key: str | None = None,
        secret_key: str | None = None,
        ca_bundle: str | os.PathLike[str] | None = None,
    ) -> None:
        """``ca_bundle``: the CA certificates (PEM) the endpoint's TLS certificate is
        verified with, for a private CA; None: botocore's default (``AWS_CA_BUNDLE``, else
        its bundled CAs)."""
        self.bucket = bucket
        # a session of our own: boto3's default session caches credentials process-wide
        session = boto3.session.Session(
            aws_access_key_id=access_key, aws_secret_access_key=secret_key
        )
        self.client = session.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            verify=str(ca_bundle) if ca_bundle else None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
            ),
        )

    @classmethod
    def from_settings(cls, settings: Any) -> S3Storage:
        return cls(
            settings.s3_endpoint_url,
            settings.s3_bucket,
            settings.s3_region,
            ca_bundle=settings.s3_ca_bundle,
        )

    def put(self, key: str, data: bytes | IO[bytes], content_type: str) -> None:
        """Store ``data``: bytes, or a binary file at its start (streamed, not read whole)."""
        with _translated(key):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def get(self, key: str, max_bytes: int | None = None) -> bytes:
        """The object's bytes; NotFound when absent; StorageError (transient) on failures."""
        with _translated(key):
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            length = response.get("ContentLength")
            if max_bytes is not None and length is not None and length > max_bytes:
                response["Body"].close()
                raise PayloadTooLarge(f"the stored object is {length} bytes, over {max_bytes}")
            return response["Body"].read()

    def head(self, key: str) -> dict[str, Any]:
        """Size and content type of an object; NotFound when absent."""
        with _translated(key):
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        return {"bytes": response["ContentLength"], "content_type": response.get("ContentType")}

    def stream(self, key: str, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        with _translated(key):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        try:
            with _translated(key):
                yield from body.iter_chunks(chunk_size)
        finally:
            body.close()

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; returns how many."""
        deleted = 0
        with _translated(prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if objects:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects})
                    deleted += len(objects)
        return deleted

    def presign_get(self, key: str, expires: int = 300, filename: str | None = None) -> str:
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if filename:
            params["ResponseContentDisposition"] = f'attachment; filename="{filename}"'
        return str(
            self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)
        )

    def presign_put(
        self,
        key: str,
        content_type: str,
        expires: int = 900,
        *,
        content_length: int | None = None,
    ) -> str:
        """A signed PUT URL; with ``content_length`` its signature covers that
        Content-Length header too (a PUT of another size is refused)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "ContentType": content_type}
        if content_length is not None:
            params["ContentLength"] = content_length
        return str(
            self.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)
        )

    # -- listing (api/batches: many upload_keys checked at once; r18-shapes) -------------

    def sizes_from(self, prefix: str, first: str, last: str) -> dict[str, int]:
        """Sizes of the objects under ``prefix`` with keys from ``first`` to at least
        ``last`` (in key order; the page holding ``last`` is read whole), 1,000 a request.

        Raises StorageError when the listing fails.
        """
        sizes: dict[str, int] = {}
        with _translated(prefix):
            # every key > first[:-1] in the prefix, so `first` itself is included
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix, StartAfter=first[:-1]
            )
            for page in pages:
                contents = page.get("Contents") or []
                for entry in contents:
                    sizes[entry["Key"]] = int(entry["Size"])
                if not contents or contents[-1]["Key"] >= last:
                    break
        return sizes

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (idempotent)."""
        with _translated(self.bucket):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except botocore.exceptions.ClientError:
                self.client.create_bucket(Bucket=self.bucket)

    def ping(self) -> bool:
        try:
            with _translated(self.bucket):
                self.client.head_bucket(Bucket=self.bucket)
        except (NotFound, StorageError):
            return False
        return True


@contextlib.contextmanager
def _translated(key: str) -> Iterator[None]:
    """botocore errors → NotFound (missing object) or StorageError (transient)."""
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise NotFound(f"no stored object {key}") from exc
        raise StorageError(f"object storage answered {code or 'an error'}") from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise StorageError(f"object storage is unreachable ({type(exc).__name__})") from exc
