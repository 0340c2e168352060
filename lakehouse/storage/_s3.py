"""S3 backend over aiobotocore: AWS S3, MinIO or any plain S3-API server.

One client is created in ``start()`` and closed in ``close()``. Uploads
stream: a body that fits in one part is sent as a single PUT, anything
larger as a multipart upload of ``part_bytes`` parts, so memory holds at most
one part whatever the object size. Either way the object appears atomically:
S3 makes a PUT or a *completed* multipart upload visible in one step, and a
failed multipart upload is aborted so no parts linger.

Every request retries in botocore (standard or adaptive mode) within the budget
of ``[storage.s3]`` max_attempts and timeouts (ADR 0015). botocore errors never
leave this module: ``_s3_errors.translate`` maps them to ours (throttled,
unavailable, access denied, not found ...) with a message that names the
operation and S3's error code, never a credential.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import datetime as dt
import hashlib
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from lakehouse.errors import LakehouseError
from lakehouse.limits import capped
from lakehouse.storage._s3_errors import TRANSPORT_ERRORS, UploadGone, error_code, translate
from lakehouse.storage.errors import ObjectNotFound, ObjectTooLarge, StorageUnavailable
from lakehouse.storage.interface import DuckDBGrant, FileIOGrant, ObjectInfo
from lakehouse.storage.keys import validate_key, validate_prefix
from lakehouse.storage.secrets import SecretsProvider

log = logging.getLogger(__name__)

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum size of every part but the last
PROBE_TIMEOUT_SECONDS = 2.0
"""At most this long per connect and read of the /health probe, which is not retried."""
_BUCKET_MISSING_CODES = frozenset({"NoSuchBucket", "404", "NotFound"})
_BUCKET_EXISTS_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})


class S3ObjectStore:
    """Objects in one S3 bucket.

    Args:
        bucket: the bucket every key lives in.
        secrets: where credentials come from; ``None`` credentials mean the
            AWS default chain (environment, profile, instance role).
        endpoint_url: an S3-compatible endpoint (MinIO); empty for AWS.
        region: the region requests are signed for.
        path_style: ``http://host/bucket/key`` addressing, which MinIO expects.
        create_bucket: create the bucket in ``start()`` when it is missing.
        part_bytes: size of multipart upload parts (at least 5 MiB).
        max_attempts, connect_timeout_seconds, read_timeout_seconds: the retry budget
            of every S3 request (ADR 0015), for DuckDB's and pyiceberg's clients too.
        list_page_size: keys per ListObjectsV2 page (S3's maximum is 1000).
        max_attempts: attempts per request, the first included (botocore retries the rest).
        retry_mode: botocore's ``standard`` or ``adaptive`` retry mode.
        connect_timeout: seconds to wait for a connection, per attempt.
        read_timeout: seconds to wait for S3's next bytes, per attempt.
    """

    def __init__(
        self,
        bucket: str,
        secrets: SecretsProvider,
        *,
        endpoint_url: str = "",
        region: str = "us-east-1",
        path_style: bool = True,
        create_bucket: bool = False,
        part_bytes: int = 8 * 1024 * 1024,
        list_page_size: int = 1000,
        max_attempts: int = 4,
        retry_mode: str = "standard",
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self.path_style = path_style
        self.create_bucket = create_bucket
        self.part_bytes = max(part_bytes, MIN_PART_BYTES)
        self.list_page_size = list_page_size
        self.max_attempts = max_attempts
        self.retry_mode = retry_mode
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._secrets = secrets
        self._client: Any = None
        self._probe_client: Any = None
        self._exit_stack: contextlib.AsyncExitStack | None = None

    def __repr__(self) -> str:
        # Never the credentials: only where the data lives.
        return (
            f"S3ObjectStore(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, "
            f"region={self.region!r})"
        )

    # -- life cycle ------------------------------------------------------------

    async def start(self) -> None:
        # The provider may read a secrets file: not on the event loop.
        credentials = await asyncio.to_thread(self._secrets.s3_credentials)
        client_args: dict[str, Any] = {"region_name": self.region}
        if self.endpoint_url:
            client_args["endpoint_url"] = self.endpoint_url
        if credentials is not None:
            client_args["aws_access_key_id"] = credentials.access_key_id
            client_args["aws_secret_access_key"] = credentials.secret_access_key
            if credentials.session_token:
                client_args["aws_session_token"] = credentials.session_token
        # total_max_attempts counts the first attempt (botocore's max_attempts would not).
        config = self._config(self.max_attempts, self.connect_timeout, self.read_timeout)
        # /health's probe must answer quickly: one attempt, short timeouts.
        probe_config = self._config(
            1,
            min(self.connect_timeout, PROBE_TIMEOUT_SECONDS),
            min(self.read_timeout, PROBE_TIMEOUT_SECONDS),
        )
        stack = contextlib.AsyncExitStack()
        session = get_session()
        try:
            self._client = await stack.enter_async_context(
                session.create_client("s3", config=config, **client_args)
            )
            self._probe_client = await stack.enter_async_context(
                session.create_client("s3", config=probe_config, **client_args)
            )
        except BotoCoreError as exc:
            await stack.aclose()
            raise StorageUnavailable(f"cannot create the S3 client: {type(exc).__name__}") from exc
        self._exit_stack = stack
        del credentials, client_args  # nothing keeps the secret but the client
        if self.create_bucket:
            await self._ensure_bucket()

    def _config(self, attempts: int, connect_timeout: float, read_timeout: float) -> AioConfig:
        return AioConfig(
            s3={"addressing_style": "path" if self.path_style else "auto"},
            retries={"total_max_attempts": attempts, "mode": self.retry_mode},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Checksums only where the S3 API requires them: S3-compatible
            # servers (older MinIO, others) reject the newer default trailers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # Load botocore's JSON models in a thread, not on the event loop.
            warm_up_loader_caches=True,
        )

    async def close(self) -> None:
        if self._exit_stack is not None:
            await self._exit_stack.aclose()
        self._exit_stack = None
        self._client = None
        self._probe_client = None

    async def probe(self) -> None:
        if self._probe_client is None:
            raise StorageUnavailable("the S3 store is not started")
        # A GET, not HeadBucket: an error answer to a HEAD has no body, so no S3 code.
        try:
            await self._probe_client.list_objects_v2(Bucket=self.bucket, MaxKeys=1)
        except (ClientError, BotoCoreError) as exc:
            raise self._error("ListObjectsV2", "", exc) from exc

    async def _ensure_bucket(self) -> None:
        try:
            await self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if error_code(exc) not in _BUCKET_MISSING_CODES:
                raise self._error("HeadBucket", "", exc) from exc
        except BotoCoreError as exc:
            raise self._error("HeadBucket", "", exc) from exc
        args: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":
            args["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            await self._client.create_bucket(**args)
        except ClientError as exc:
            if error_code(exc) not in _BUCKET_EXISTS_CODES:
                raise self._error("CreateBucket", "", exc) from exc
        except BotoCoreError as exc:
            raise self._error("CreateBucket", "", exc) from exc
        log.info("created bucket", extra={"bucket": self.bucket})

    @property
    def _s3(self) -> Any:
        if self._client is None:
            raise StorageUnavailable("the S3 store is not started")
        return self._client

    # -- addressing ------------------------------------------------------------

    def duckdb_grant(self, read_prefixes: Sequence[str]) -> DuckDBGrant:
        root = f"s3://{self.bucket}/"
        return DuckDBGrant(
            root=root,
            read_prefixes=tuple(read_prefixes),
            secret_sql=self._secret_sql(root),
            settings=self._httpfs_settings(),
        )

    def _httpfs_settings(self) -> tuple[tuple[str, int | float | bool], ...]:
        """DuckDB's httpfs within the retry budget (ADR 0015): ``http_retries`` counts
        retries, not attempts; one ``http_timeout`` (whole seconds) bounds connecting,
        each read and each wait between retries. 5xx, 429 and connection failures are
        retried, 100 ms then 4 times longer each time."""
        return (
            ("http_retries", self.max_attempts - 1),
            ("http_retry_wait_ms", 100),
            ("http_retry_backoff", 4.0),
            ("http_timeout", max(math.ceil(self.read_timeout), 1)),
        )

    def fileio_grant(self) -> FileIOGrant:
        properties = {
            "s3.region": self.region,
            "s3.path-style-access": "true" if self.path_style else "false",
            # The same bounds on a stalled S3 as our own client's (pyarrow retries itself).
            "s3.connect-timeout": str(self.connect_timeout),
            "s3.request-timeout": str(self.read_timeout),
        }
        if self.endpoint_url:
            properties["s3.endpoint"] = self.endpoint_url
        credentials = self._secrets.s3_credentials()
        if credentials is not None:
            properties["s3.access-key-id"] = credentials.access_key_id
            properties["s3.secret-access-key"] = credentials.secret_access_key
            if credentials.session_token:
                properties["s3.session-token"] = credentials.session_token
        return FileIOGrant(root=f"s3://{self.bucket}/", properties=properties)

    def _secret_sql(self, scope: str) -> str:
        """``CREATE SECRET`` for this bucket, from the SecretsProvider (ADR 0006)."""
        options = [
            "TYPE S3",
            f"REGION {_literal(self.region)}",
            f"URL_STYLE {_literal('path' if self.path_style else 'vhost')}",
            f"SCOPE {_literal(scope)}",
        ]
        if self.endpoint_url:
            parts = urlsplit(self.endpoint_url)
            options.append(f"ENDPOINT {_literal(parts.netloc)}")
            options.append(f"USE_SSL {'true' if parts.scheme == 'https' else 'false'}")
        credentials = self._secrets.s3_credentials()
        # No credentials: an anonymous secret (public buckets); the credential_chain
        # provider would need the aws extension, which we do not ship.
        if credentials is not None:
            options.append(f"KEY_ID {_literal(credentials.access_key_id)}")
            options.append(f"SECRET {_literal(credentials.secret_access_key)}")
            if credentials.session_token:
                options.append(f"SESSION_TOKEN {_literal(credentials.session_token)}")
        return f"CREATE SECRET lakehouse_primary ({', '.join(options)})"

    # -- writes ----------------------------------------------------------------

    async def put(
        self,
        key: str,
        data: bytes | AsyncIterable[bytes],
        *,
        max_bytes: int | None = None,
    ) -> ObjectInfo:
        validate_key(key)
        if isinstance(data, bytes | bytearray | memoryview):
            # One part (a single PutObject) when it fits, else a multipart upload.
            chunks: AsyncIterable[bytes] = _chunks_of(bytes(data), self.part_bytes)
        else:
            chunks = data
        if max_bytes is not None:
            chunks = capped(chunks, max_bytes, partial(ObjectTooLarge.over, max_bytes))
        return await self._put_stream(key, chunks)

    async def _put_stream(self, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        pending: list[bytes] = []
        pending_bytes = 0
        upload: _MultipartUpload | None = None
        try:
            async for chunk in chunks:
                if not chunk:
                    continue
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= self.part_bytes:
                    if upload is None:
                        upload = await self._start_multipart(key)
                    part = b"".join(pending)
                    pending.clear()
                    pending_bytes = 0
                    await upload.add_part(part)
                    del part
            if upload is None:
                # Everything fitted in one part: a single PUT is atomic too.
                await self._call(
                    "PutObject", key, Bucket=self.bucket, Key=key, Body=b"".join(pending)
                )
            else:
                if pending:
                    await upload.add_part(b"".join(pending))
                    pending.clear()
                await upload.complete()
        except BaseException:
            if upload is not None:
                # One quick attempt: the write failed already, most likely on an S3
                # that fails, and the sweep aborts what is left once past the grace.
                await upload.abort(quick=True)
            raise
        return await self.head(key)

    async def _start_multipart(self, key: str) -> _MultipartUpload:
        created = await self._call("CreateMultipartUpload", key, Bucket=self.bucket, Key=key)
        return _MultipartUpload(self, key, created["UploadId"])

    async def put_file(self, key: str, path: Path) -> ObjectInfo:
        validate_key(key)
        return await self._put_stream(key, _read_file(path, self.part_bytes))

    async def delete(self, key: str, *, missing_ok: bool = False) -> None:
        validate_key(key)
        # S3's DeleteObject succeeds for a missing key; the protocol wants to know.
        if not missing_ok:
            await self.head(key)
        await self._call("DeleteObject", key, Bucket=self.bucket, Key=key)

    # -- reads -----------------------------------------------------------------

    async def get(self, key: str) -> bytes:
        validate_key(key)
        response = await self._call("GetObject", key, Bucket=self.bucket, Key=key)
        async with response["Body"] as body:
            try:
                data: bytes = await body.read()
            except TRANSPORT_ERRORS as exc:
                raise self._error("GetObject", key, exc) from exc
        return data

    async def open_read(self, key: str, chunk_size: int = 1024 * 1024) -> AsyncIterator[bytes]:
        validate_key(key)
        response = await self._call("GetObject", key, Bucket=self.bucket, Key=key)
        async with response["Body"] as body:
            while True:
                try:
                    chunk = await body.read(chunk_size)
                except TRANSPORT_ERRORS as exc:
                    raise self._error("GetObject", key, exc) from exc
                if not chunk:
                    return
                yield chunk

    async def head(self, key: str) -> ObjectInfo:
        validate_key(key)
        response = await self._call("HeadObject", key, Bucket=self.bucket, Key=key)
        return ObjectInfo(
            key=key,
            size=int(response["ContentLength"]),
            etag=str(response.get("ETag", "")).strip('"'),
            last_modified=_utc(response["LastModified"]),
        )

    async def list(self, prefix: str = "") -> list[ObjectInfo]:
        validate_prefix(prefix)
        found: list[ObjectInfo] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(
                Bucket=self.bucket,
                Prefix=prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            ):
                for item in page.get("Contents", []):
                    found.append(
                        ObjectInfo(
                            key=item["Key"],
                            size=int(item["Size"]),
                            etag=str(item.get("ETag", "")).strip('"'),
                            last_modified=_utc(item["LastModified"]),
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise self._error("ListObjectsV2", prefix, exc) from exc
        found.sort(key=lambda info: info.key)
        return found

    async def abort_stale_uploads(
        self, started_before: dt.datetime, prefixes: Sequence[str]
    ) -> builtins.list[str]:
        """Abort the multipart uploads under ``prefixes`` started before ``started_before``:
        a process that died mid-upload leaves its parts behind, billed and invisible."""
        stale: list[tuple[str, str]] = []
        paginator = self._s3.get_paginator("list_multipart_uploads")
        for prefix in prefixes:
            try:
                async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                    stale += [
                        (upload["Key"], upload["UploadId"])
                        for upload in page.get("Uploads", [])
                        if _utc(upload["Initiated"]) < started_before
                    ]
            except (ClientError, BotoCoreError) as exc:
                raise self._error("ListMultipartUploads", prefix, exc) from exc
        aborted = [
            key for key, upload_id in stale if await _MultipartUpload(self, key, upload_id).abort()
        ]
        if aborted:
            log.info("aborted %d stale multipart upload(s)", len(aborted))
        return sorted(aborted)

    # -- error translation -----------------------------------------------------

    async def _call(self, operation: str, key: str, *, quick: bool = False, **kwargs: Any) -> Any:
        """Call one S3 operation, translating botocore's errors into ours; ``quick``: on
        the probe's client (one attempt, short timeouts) instead of with the budget."""
        client = self._probe_client if quick and self._probe_client is not None else self._s3
        method: Callable[..., Any] = getattr(client, _snake(operation))
        try:
            return await method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(operation, key, exc) from exc

    def _error(self, operation: str, key: str, exc: BaseException) -> LakehouseError:
        error = translate(operation, self.bucket, key, exc)
        if error.status_code >= 500:
            log.warning(
                "S3 request failed",
                extra={"operation": operation, "bucket": self.bucket, "reason": error.details},
            )
        return error


class _MultipartUpload:
    """One in-progress multipart upload; parts are sent one at a time."""

    def __init__(self, store: S3ObjectStore, key: str, upload_id: str) -> None:
        self.store = store
        self.key = key
        self.upload_id = upload_id
        self.parts: list[dict[str, Any]] = []

    async def add_part(self, body: bytes) -> None:
        number = len(self.parts) + 1
        response = await self.store._call(
            "UploadPart",
            self.key,
            Bucket=self.store.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
        )
        self.parts.append({"ETag": response["ETag"], "PartNumber": number})

    async def complete(self) -> None:
        try:
            await self.store._call(
                "CompleteMultipartUpload",
                self.key,
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
        except UploadGone:
            # A retry after an attempt that completed but whose answer was lost (or an
            # upload aborted meanwhile): the object tells which, by its multipart ETag.
            if not await self._completed():
                raise

    async def _completed(self) -> bool:
        """Whether ``key`` holds the object these parts make."""
        try:
            info = await self.store.head(self.key)
        except ObjectNotFound:
            return False
        return info.etag.strip('"') == _multipart_etag(self.parts)

    async def abort(self, *, quick: bool = False) -> bool:
        """Abort the upload; whether it is gone (one already gone counts as aborted).
        ``quick``: one attempt with short timeouts, not the retry budget.

        A failure to abort is logged, not raised: the upload failed already, and the
        orphan sweep aborts it once it is older than the grace period.
        """
        try:
            await self.store._call(
                "AbortMultipartUpload",
                self.key,
                quick=quick,
                Bucket=self.store.bucket,
                Key=self.key,
                UploadId=self.upload_id,
            )
        except UploadGone:
            return True  # NoSuchUpload: completed or aborted meanwhile
        except Exception as exc:
            log.warning(
                "could not abort a multipart upload; the orphan sweep or a bucket "
                "lifecycle rule will remove its parts",
                extra={"bucket": self.store.bucket, "key": self.key, "reason": _why(exc)},
            )
            return False
        return True


def _why(exc: Exception) -> object:
    """What a log says of ``exc``: our error's details, or the exception's class."""
    return exc.details if isinstance(exc, LakehouseError) else type(exc).__name__


def _multipart_etag(parts: Sequence[dict[str, Any]]) -> str:
    """S3's ETag of a completed multipart upload: the MD5 of its parts' MD5s, and their count."""
    digests = b"".join(bytes.fromhex(part["ETag"].strip('"')) for part in parts)
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"


async def _chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    if len(data) <= size:
        yield data  # no copy for the common small object
        return
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


async def _read_file(path: Path, chunk_size: int) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        handle.close()


def _snake(operation: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in operation).lstrip("_")


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _literal(value: str) -> str:
    """A DuckDB string literal."""
    return "'" + value.replace("'", "''") + "'"
