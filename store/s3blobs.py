"""Blobs in an S3-compatible bucket (AWS S3, MinIO, Cloudflare R2, GCS's XML API) via boto3.

boto3 is AWS's own SDK: the request signing, retry modes and endpoint options (path-style
addressing, custom endpoint URL) that the S3-compatible stores document are the ones it has.
Every failure to reach the bucket becomes :class:`BlobError`, which the service answers with
503 ``storage-unavailable`` before anything is committed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from store.blobs import BlobError, BlobInfo, BlobNotFound, BlobStore, sha_of

_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3BlobStore(BlobStore):
    """Objects ``<prefix>ab/<sha256>.jpg`` in one bucket; the key names the bytes."""

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        addressing_style: str = "auto",
        timeout_s: float = 10.0,
        max_attempts: int = 3,
    ) -> None:
        if not bucket:
            raise ValueError("S3 blob store needs a bucket name (REPIC_STORAGE__S3_BUCKET)")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"max_attempts": max_attempts, "mode": "standard"},
            s3={"addressing_style": addressing_style},
        )
        # Credentials left None fall through to boto3's chain (env, IRSA/workload identity).
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=config,
        )

    def _object(self, key: str) -> str:
        sha_of(key)
        return self.prefix + key

    def put(self, data: bytes) -> str:
        """Upload ``data`` unless an object of that key and size is there already."""
        key = self.key_for(hashlib.sha256(data).hexdigest())
        name = self._object(key)
        try:
            head = self._head(name)
            if head is not None and head.get("ContentLength") == len(data):
                return key
            # A PUT is atomic: readers see the old object or the whole new one, never a part.
            self._client.put_object(
                Bucket=self.bucket, Key=name, Body=data, ContentType="image/jpeg"
            )
        except (BotoCoreError, ClientError) as exc:
            raise BlobError(f"cannot write {key} to {self.describe()}: {exc}") from exc
        return key

    def get(self, key: str) -> bytes:
        """Download a blob."""
        name = self._object(key)
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=name)["Body"]
            data: bytes = body.read()
            return data
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise BlobNotFound(f"image {key} is missing from {self.describe()}") from exc
            raise BlobError(f"cannot read {key} from {self.describe()}: {exc}") from exc
        except BotoCoreError as exc:
            raise BlobError(f"cannot read {key} from {self.describe()}: {exc}") from exc

    def exists(self, key: str) -> bool:
        """HEAD the object."""
        try:
            return self._head(self._object(key)) is not None
        except (BotoCoreError, ClientError) as exc:
            raise BlobError(f"cannot reach {self.describe()}: {exc}") from exc

    def delete(self, key: str) -> None:
        """Delete the object (S3 answers success for a missing key too)."""
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._object(key))
        except (BotoCoreError, ClientError) as exc:
            raise BlobError(f"cannot delete {key} from {self.describe()}: {exc}") from exc

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every object under the prefix that is a blob key."""
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for item in page.get("Contents", []):
                    key = str(item["Key"])[len(self.prefix) :]
                    try:
                        sha_of(key)
                    except ValueError:
                        continue
                    yield BlobInfo(key, int(item["Size"]), item["LastModified"].astimezone(UTC))
        except (BotoCoreError, ClientError) as exc:
            raise BlobError(f"cannot list {self.describe()}: {exc}") from exc

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (development and tests; production buckets
        are made by operators with their own policies)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _code(exc) not in _MISSING and _code(exc) != "NoSuchBucket":
                raise BlobError(f"cannot reach {self.describe()}: {exc}") from exc
            self._client.create_bucket(Bucket=self.bucket)
        except BotoCoreError as exc:
            raise BlobError(f"cannot reach {self.describe()}: {exc}") from exc

    def describe(self) -> str:
        """Bucket, prefix and endpoint."""
        where = self.endpoint_url or "AWS S3"
        return f"s3://{self.bucket}/{self.prefix} at {where}"

    def _head(self, name: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._client.head_object(Bucket=self.bucket, Key=name)
            return head
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
