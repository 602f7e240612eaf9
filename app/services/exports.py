"""CSV and XLSX downloads of tables, safe to open in a spreadsheet.

A text cell that begins with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) would
be run as a formula by Excel or WPS (CSV injection); such cells get a leading apostrophe,
in both formats. Numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import xlsxwriter

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Numbers as they are; text neutralised if a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | Decimal):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@dataclass(frozen=True)
class Sheet:
    name: str
    header: Sequence[Any]
    rows: Sequence[Sequence[Any]]


def to_csv(sheets: Sequence[Sheet]) -> bytes:
    """One CSV (UTF-8 with BOM, so Excel shows Chinese); sheets separated by a titled gap."""
    out = io.StringIO()
    writer = csv.writer(out)
    for i, sheet in enumerate(sheets):
        if i:
            writer.writerow([])
        if len(sheets) > 1:
            writer.writerow([safe_cell(sheet.name)])
        writer.writerow([safe_cell(str(h)) for h in sheet.header])
        for row in sheet.rows:
            writer.writerow([safe_cell(c) for c in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(sheets: Sequence[Sheet]) -> bytes:
    """One workbook, a worksheet per sheet; text written as text, never as a formula."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    bold = workbook.add_format({"bold": True})
    used: set[str] = set()
    for sheet in sheets:
        # Excel: at most 31 characters, none of []:*?/\ , unique.
        name = "".join(c for c in str(sheet.name) if c not in "[]:*?/\\")[:31] or "Sheet"
        base, n = name, 2
        while name.lower() in used:
            name = f"{base[:28]}~{n}"
            n += 1
        used.add(name.lower())
        ws = workbook.add_worksheet(name)
        for col, title in enumerate(sheet.header):
            ws.write_string(0, col, str(safe_cell(str(title))), bold)
        for r, row in enumerate(sheet.rows, start=1):
            for col, value in enumerate(row):
                cell = safe_cell(value)
                if isinstance(cell, int | float | Decimal) and not isinstance(cell, bool):
                    ws.write_number(r, col, float(cell))
                else:
                    ws.write_string(r, col, str(cell))
        ws.set_column(0, max(len(sheet.header) - 1, 0), 16)
    workbook.close()
    return buffer.getvalue()
