"""Real .xlsx workbooks for the ingest tests, written by xlsxwriter as Excel would store them:
numbers as numbers, dates as date-formatted numbers, text as shared strings, formulas with
their cached value."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import xlsxwriter


class Formula(msgspec.Struct):
    """A formula cell and the value Excel cached for it."""

    formula: str
    value: Any


class Merged(msgspec.Struct):
    """A header cell merged over ``width`` columns (the value is in the first)."""

    value: str
    width: int


class Blank(msgspec.Struct):
    """A cell with a format but no value: Excel keeps such cells in the file."""


Sheets = dict[str, Sequence[Sequence[Any]]]


def xlsx_bytes(sheets: Sheets) -> bytes:
    """A workbook of ``sheets`` (name -> rows of cells; None is no cell)."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    date_format = workbook.add_format({"num_format": "yyyy-mm-dd"})
    time_format = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    bold = workbook.add_format({"bold": True})
    for name, rows in sheets.items():
        sheet = workbook.add_worksheet(name)
        for r, row in enumerate(rows):
            c = 0
            for cell in row:
                if isinstance(cell, Merged):
                    sheet.merge_range(r, c, r, c + cell.width - 1, cell.value)
                    c += cell.width
                    continue
                _write(sheet, r, c, cell, date_format, time_format, bold)
                c += 1
    workbook.close()
    return buffer.getvalue()


def write_xlsx(path: Path, sheets: Sheets) -> Path:
    path.write_bytes(xlsx_bytes(sheets))
    return path


def _write(sheet: Any, r: int, c: int, cell: Any, date: Any, time: Any, bold: Any) -> None:
    if cell is None:
        return
    if isinstance(cell, Blank):
        sheet.write_blank(r, c, None, bold)
    elif isinstance(cell, Formula):
        sheet.write_formula(r, c, cell.formula, None, cell.value)
    elif isinstance(cell, bool):
        sheet.write_boolean(r, c, cell)
    elif isinstance(cell, int | float):
        sheet.write_number(r, c, cell)
    elif isinstance(cell, dt.datetime):
        sheet.write_datetime(r, c, cell, date if cell.time() == dt.time() else time)
    elif isinstance(cell, str):
        sheet.write_string(r, c, cell)  # text, even when it looks like a number
    else:
        raise TypeError(f"no xlsx cell for {cell!r}")


def rewritten(
    workbook: bytes,
    change: Callable[[str, bytes], tuple[str, bytes]] | None = None,
    extra: Mapping[str, bytes] | None = None,
) -> bytes:
    """``workbook`` with each part passed through ``change`` ((name, bytes) -> (name,
    bytes)) and the ``extra`` parts added: workbooks no writer makes (a cell past Excel's
    limit, a renamed part, markup Excel does not write), for the ingest's guards."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(workbook)) as old,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as new,
    ):
        for part in old.infolist():
            name, data = part.filename, old.read(part)
            if change is not None:
                name, data = change(name, data)
            new.writestr(name, data)
        for name, data in (extra or {}).items():
            new.writestr(name, data)
    return out.getvalue()
