"""The HTTP side of the command-line client: one method per API call, errors as
``ClientError`` carrying the server's own message.

Nothing here imports the server's modules: the client knows the API only as
JSON over HTTP, so it works against any server version that speaks it.
"""

from __future__ import annotations

import mimetypes
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

# A query or an ingest may take minutes; the server bounds both with its own limits.
TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=600.0, pool=10.0)
JOB_POLL_SECONDS = 0.25


class ClientError(Exception):
    """A request that failed: the server's message, or why the server was not reached."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class _ReadCounter:
    """A binary file whose reads are reported to ``advance`` (httpx streams the
    multipart file by reading it; it finds the size through ``fileno``)."""

    def __init__(self, handle: IO[bytes], advance: Callable[[int], None]) -> None:
        self.handle = handle
        self.advance = advance

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.advance(len(data))
        return data

    def fileno(self) -> int:
        return self.handle.fileno()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()


class LakehouseClient:
    """A client of one server at ``url``, with the bearer ``token`` when given."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=TIMEOUT)

    def close(self) -> None:
        self.http.close()

    def datasets(self) -> list[dict[str, Any]]:
        return self._json("GET", "/v1/datasets")  # type: ignore[no-any-return]

    def dataset(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/datasets/{_segment(name)}")  # type: ignore[no-any-return]

    def history(self, name: str) -> dict[str, Any]:
        path = f"/v1/datasets/{_segment(name)}/history"
        return self._json("GET", path)  # type: ignore[no-any-return]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/ingest/jobs/{job_id}")  # type: ignore[no-any-return]

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """A query's rows as JSON objects (for small results such as a profile)."""
        return self._json("POST", "/v1/sql", json={"sql": sql})  # type: ignore[no-any-return]

    @contextmanager
    def query(self, sql: str, result_format: str) -> Iterator[Iterator[bytes]]:
        """A query's result in ``result_format`` (csv, json, ...), streamed as it arrives."""
        with self._send(
            "POST", "/v1/sql", params={"format": result_format}, json={"sql": sql}
        ) as response:
            yield response.iter_bytes()

    def ingest(
        self,
        path: Path,
        name: str,
        mode: str | None,
        on_upload: Callable[[int], None],
        on_job: Callable[[dict[str, Any]], None],
        types: str | None = None,
        options: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Upload ``path`` as dataset ``name``, reporting the bytes sent to ``on_upload``
        and, once the file is sent, the server's job (phase, rows) to ``on_job``.
        ``options``: more query parameters (``format``, ``sheet``). The file goes with its
        name and a Content-Type from its extension, so the server can tell its format."""
        job_id = str(uuid.uuid4())
        params = _ingest_params(name, mode, types, options)
        params["job"] = job_id
        size = path.stat().st_size
        sent = 0

        def advance(count: int) -> None:
            nonlocal sent
            sent += count
            on_upload(count)

        finished = threading.Event()

        def follow_job() -> None:
            # Only once the file is sent: until then the upload bar says more.
            while not finished.wait(JOB_POLL_SECONDS):
                if sent >= size:
                    # Progress is a courtesy: the upload's own answer decides.
                    with suppress(ClientError):
                        on_job(self.job(job_id))

        watcher = threading.Thread(target=follow_job, daemon=True)
        try:
            with path.open("rb") as handle:
                media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                files = {"file": (path.name, _ReadCounter(handle, advance), media_type)}
                watcher.start()
                return self._json("POST", "/v1/ingest", params=params, files=files)  # type: ignore[no-any-return]
        finally:
            finished.set()
            if watcher.is_alive():
                watcher.join()

    def ingest_source(
        self,
        key: str,
        name: str,
        mode: str | None,
        types: str | None = None,
        options: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """Ingest the object ``key`` already in the server's storage as dataset ``name``."""
        params = {**_ingest_params(name, mode, types, options), "source": key}
        return self._json("POST", "/v1/ingest", params=params)  # type: ignore[no-any-return]

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        with self._send(method, path, **kwargs) as response:
            response.read()
            return response.json()

    @contextmanager
    def _send(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self.http.stream(method, path, **kwargs) as response:
                if response.is_error:
                    response.read()
                    raise ClientError(_error_message(response))
                yield response
        except httpx.ConnectError:
            raise ClientError(
                f"cannot connect to {self.url}: is the server running? (set --url or LAKEHOUSE_URL)"
            ) from None
        except httpx.TimeoutException:
            raise ClientError(f"{self.url} did not answer in time") from None
        except httpx.LocalProtocolError:  # its message would quote the headers, the token's too
            raise ClientError(f"request to {self.url} could not be sent") from None
        except httpx.HTTPError as exc:
            raise ClientError(f"request to {self.url} failed: {exc}") from None


def _ingest_params(
    name: str, mode: str | None, types: str | None, options: dict[str, str] | None
) -> dict[str, str]:
    params = {"name": name, **(options or {})}
    if mode:
        params["mode"] = mode
    if types:
        params["types"] = types
    return params


def _segment(name: str) -> str:
    """A dataset name as one path segment (the server validates it)."""
    return quote(name, safe="")


def _error_message(response: httpx.Response) -> str:
    """The server's ``{"error": {"message"}}``, else the status line."""
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    if isinstance(message, str) and message:
        return message
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()
