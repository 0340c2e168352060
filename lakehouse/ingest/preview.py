"""The rows a dry run shows: the first rows of the converted file, as JSON-ready values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

PREVIEW_ROWS = 20
"""Rows of the converted file a dry run returns."""


def sample_rows(parquet_path: Path, limit: int) -> list[list[Any]]:
    """The first ``limit`` rows of ``parquet_path``, each a list in column order, as
    the committed table would hold them (typed values, NULL as None). Blocking."""
    parquet = pq.ParquetFile(parquet_path)
    try:
        batch = next(parquet.iter_batches(batch_size=limit), None)
    finally:
        parquet.close()
    if batch is None:
        return []
    columns = [column.to_pylist() for column in batch.columns]
    return [list(row) for row in zip(*columns, strict=True)]
