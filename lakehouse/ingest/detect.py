"""Which format and compression an upload is in: what the client declared, checked
against the bytes.

The format comes from ``?format=``, else the Content-Type, else the file name's
extension, else the first bytes of the (decompressed) file. The bytes are always
sniffed: a declared format they contradict is ``FormatMismatch`` (400). The text
formats (CSV, TSV, NDJSON, a JSON array) cannot always be told apart by their first
bytes, so a declared text format is never contradicted by text; only the binary
formats' signatures (Parquet, Arrow, xlsx) are.

The compression comes from the first bytes (gzip ``1f 8b``, zstd ``28 b5 2f fd``);
a declared one (Content-Encoding, Content-Type or a ``.gz``/``.zst`` name) the bytes
do not start with is ``InvalidCompression`` (400).

Pure functions: the route and the service pass what they know.
"""

from __future__ import annotations

from lakehouse.errors import BadRequest
from lakehouse.ingest.errors import FormatMismatch, InvalidCompression, UnsupportedUpload
from lakehouse.ingest.formats import Compression, Format

FORMAT_MEDIA_TYPES: dict[str, Format] = {
    "text/csv": Format.CSV,
    "application/csv": Format.CSV,
    "text/tab-separated-values": Format.TSV,
    "application/x-ndjson": Format.NDJSON,
    "application/ndjson": Format.NDJSON,
    "application/jsonl": Format.NDJSON,
    "application/x-jsonlines": Format.NDJSON,
    "application/json": Format.JSON,
    "application/vnd.apache.parquet": Format.PARQUET,
    "application/x-parquet": Format.PARQUET,
    "application/vnd.apache.arrow.file": Format.ARROW,
    "application/vnd.apache.arrow.stream": Format.ARROW,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": Format.XLSX,
}
COMPRESSION_MEDIA_TYPES: dict[str, Compression] = {
    "application/gzip": Compression.GZIP,
    "application/x-gzip": Compression.GZIP,
    "application/zstd": Compression.ZSTD,
}
NEUTRAL_MEDIA_TYPES = frozenset({"", "text/plain", "application/octet-stream"})
"""Content-Types that say nothing about the format: the name or the bytes decide."""

ACCEPTED_MEDIA_TYPES = sorted(
    {*FORMAT_MEDIA_TYPES, *COMPRESSION_MEDIA_TYPES, *NEUTRAL_MEDIA_TYPES} - {""}
)

EXTENSIONS: dict[str, Format] = {
    ".csv": Format.CSV,
    ".tsv": Format.TSV,
    ".tab": Format.TSV,
    ".ndjson": Format.NDJSON,
    ".jsonl": Format.NDJSON,
    ".json": Format.JSON,
    ".parquet": Format.PARQUET,
    ".arrow": Format.ARROW,
    ".arrows": Format.ARROW,
    ".feather": Format.ARROW,
    ".ipc": Format.ARROW,
    ".xlsx": Format.XLSX,
}
COMPRESSION_SUFFIXES: dict[str, Compression] = {
    ".gz": Compression.GZIP,
    ".gzip": Compression.GZIP,
    ".zst": Compression.ZSTD,
    ".zstd": Compression.ZSTD,
}
CONTENT_ENCODINGS: dict[str, Compression] = {
    "": Compression.NONE,
    "identity": Compression.NONE,
    "gzip": Compression.GZIP,
    "x-gzip": Compression.GZIP,
    "zstd": Compression.ZSTD,
}

_COMPRESSION_MAGIC = {Compression.GZIP: b"\x1f\x8b", Compression.ZSTD: b"\x28\xb5\x2f\xfd"}
_TEXT_FORMATS = frozenset({Format.CSV, Format.TSV, Format.NDJSON, Format.JSON})
SNIFF_BYTES = 4096
"""How much of the start of a file ``sniff_format`` needs."""


def parse_format(name: str | None) -> Format | None:
    """``?format=`` as a Format; a 400 naming the formats for anything else."""
    if name is None:
        return None
    try:
        return Format(name.lower())
    except ValueError:
        allowed = [f.value for f in Format]
        raise BadRequest(
            f"unknown format {name!r}; use one of {', '.join(allowed)}",
            details={"format": name, "allowed": allowed},
        ) from None


def check_media_type(media_type: str) -> None:
    """A Content-Type ingest does not read is ``UnsupportedUpload`` (415) listing those it does."""
    known = media_type in FORMAT_MEDIA_TYPES or media_type in COMPRESSION_MEDIA_TYPES
    if not known and media_type not in NEUTRAL_MEDIA_TYPES:
        raise UnsupportedUpload(
            f"unsupported Content-Type {media_type!r}: use multipart/form-data (field "
            f"'file') or one of {', '.join(ACCEPTED_MEDIA_TYPES)}",
            details={"content_type": media_type, "accepted": ACCEPTED_MEDIA_TYPES},
        )


def declared_compression(content_encoding: str, media_type: str, file_name: str) -> Compression:
    """The compression the request names (NONE when it names none).

    Raises UnsupportedUpload (415) for a Content-Encoding other than gzip or zstd.
    """
    encoding = content_encoding.strip().lower()
    if encoding not in CONTENT_ENCODINGS:
        accepted = sorted(k for k in CONTENT_ENCODINGS if k)
        raise UnsupportedUpload(
            f"unsupported Content-Encoding {content_encoding!r}; use one of {', '.join(accepted)}",
            details={"content_encoding": content_encoding, "accepted": accepted},
        )
    if CONTENT_ENCODINGS[encoding] != Compression.NONE:
        return CONTENT_ENCODINGS[encoding]
    if media_type in COMPRESSION_MEDIA_TYPES:
        return COMPRESSION_MEDIA_TYPES[media_type]
    return COMPRESSION_SUFFIXES.get(_suffix(file_name), Compression.NONE)


def sniff_compression(head: bytes) -> Compression:
    """The compression the first bytes show (NONE: not gzip nor zstd)."""
    for compression, magic in _COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            return compression
    return Compression.NONE


def decide_compression(declared: Compression, head: bytes) -> Compression:
    """The upload's compression: the bytes' own, which must be the declared one if any."""
    found = sniff_compression(head)
    if declared not in (Compression.NONE, found):
        raise InvalidCompression(
            f"the upload was declared {declared.value}-compressed but is not",
            details={"declared": declared.value, "detected": found.value},
        )
    return found


def sniff_format(head: bytes) -> Format:
    """The format the first bytes of a decompressed file show; text is CSV unless it
    opens a JSON array of objects (``[`` then ``{`` or ``]``) or an object (``{``, one
    per line: NDJSON). A CSV header may start with ``[``: ``[Date],[Amount]``."""
    if head.startswith(b"PAR1"):
        return Format.PARQUET
    if head.startswith((b"ARROW1", b"\xff\xff\xff\xff")):
        return Format.ARROW
    if head.startswith(b"PK\x03\x04"):
        return Format.XLSX
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"[") and text[1:].lstrip()[:1] in (b"{", b"]"):
        return Format.JSON
    if text.startswith(b"{"):
        return Format.NDJSON
    return Format.CSV


def declared_format(
    param: Format | None, media_type: str, file_name: str
) -> tuple[Format, str] | None:
    """The format the request names and what named it (for messages), or None."""
    if param is not None:
        return param, "format="
    if media_type in FORMAT_MEDIA_TYPES:
        return FORMAT_MEDIA_TYPES[media_type], f"Content-Type {media_type}"
    extension = _extension(file_name)
    if extension in EXTENSIONS:
        return EXTENSIONS[extension], f"file name {file_name.rsplit('/', 1)[-1]!r}"
    return None


def decide_format(param: Format | None, media_type: str, file_name: str, head: bytes) -> Format:
    """The upload's format: the declared one if the bytes agree, else what the bytes show.

    Raises FormatMismatch (400) when the bytes contradict the declared format.
    """
    detected = sniff_format(head)
    declared = declared_format(param, media_type, file_name)
    if declared is None:
        return detected
    fmt, by = declared
    if fmt == detected or (fmt in _TEXT_FORMATS and detected in _TEXT_FORMATS):
        return fmt
    raise FormatMismatch(
        f"the upload was declared {fmt.value} (by {by}) but its bytes are {detected.value}",
        details={"declared": fmt.value, "declared_by": by, "detected": detected.value},
    )


def _suffix(file_name: str) -> str:
    base = file_name.rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[1].lower() if "." in base else ""


def _extension(file_name: str) -> str:
    """The format's extension, past a compression suffix: ``x.csv.gz`` -> ``.csv``."""
    base = file_name.rsplit("/", 1)[-1]
    if _suffix(base) in COMPRESSION_SUFFIXES:
        base = base.rsplit(".", 1)[0]
    return _suffix(base)
