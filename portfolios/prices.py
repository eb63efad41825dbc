"""Reading and validating a price file (pure: no Django).

A price file is CSV, optionally gzipped, with the header ``date,ticker,adj_close``.
Line numbers in messages are physical lines of the file: the header is line 1,
and blank lines (skipped) still count.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd

COLUMNS = ("date", "ticker", "adj_close")
PRICE_PLACES = Decimal("0.000001")
# NUMERIC(18, 6) holds 12 digits before the decimal point.
MAX_PRICE = Decimal(10) ** 12
MAX_REPORTED_ERRORS = 50
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


@dataclass(frozen=True)
class PriceRow:
    line: int
    date: date
    ticker: str
    close: Decimal


class PriceFileError(ValueError):
    def __init__(self, errors: list[str], total: int | None = None) -> None:
        self.errors = errors
        self.total = total if total is not None else len(errors)
        more = f"\n... and {self.total - len(errors)} more" if self.total > len(errors) else ""
        super().__init__("\n".join(errors) + more)


def _text(path: Path) -> str:
    if not path.exists():
        raise PriceFileError([f"{path}: no such file"])
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8-sig")
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError) as exc:
        raise PriceFileError([f"{path}: cannot be read as UTF-8 CSV ({exc})"]) from exc


def parse_date(text: str) -> date | None:
    if not ISO_DATE.fullmatch(text):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def parse_price(text: str) -> tuple[Decimal | None, str | None]:
    """(price rounded to 1e-6, None) or (None, the reason it is refused)."""
    if text == "":
        return None, "missing price"
    if text.lower().lstrip("+-") in ("nan", "inf", "infinity", "snan"):
        return None, f"price '{text}' is not a finite number"
    if not PLAIN_NUMBER.fullmatch(text):
        return None, f"price '{text}' is not a number"
    try:
        value = Decimal(text)
        if value >= MAX_PRICE:
            return None, f"price {text} is too large (at most {MAX_PRICE - PRICE_PLACES})"
        rounded = value.quantize(PRICE_PLACES)
    except InvalidOperation:
        return None, f"price '{text}' is not a number"
    if rounded <= 0:
        return None, f"price {text} is not positive" + (" after rounding to 6 decimals" if value > 0 else "")
    return rounded, None


def read_price_file(path: str | Path, *, known_tickers: Iterable[str]) -> list[PriceRow]:
    """Parse and validate every row; raise ``PriceFileError`` naming each bad line and why."""
    path = Path(path)
    text = _text(path)
    if not text.strip():
        raise PriceFileError([f"{path}: the file is empty"])
    reader = csv.reader(io.StringIO(text, newline=""))
    known = set(known_tickers)
    errors: list[tuple[int, str]] = []
    rows: list[PriceRow] = []
    first_seen: dict[tuple[str, date], int] = {}
    header_checked = False
    for record in reader:
        line = reader.line_num
        if not record or (all(field.strip() == "" for field in record) and len(record) <= 1):
            continue  # a blank line
        fields = [field.strip() for field in record]
        if not header_checked:
            header_checked = True
            if tuple(fields) != COLUMNS:
                raise PriceFileError([f"line {line}: header must be {','.join(COLUMNS)}, found {','.join(fields)}"])
            continue
        if len(fields) != len(COLUMNS):
            errors.append((line, f"expected {len(COLUMNS)} fields, found {len(fields)}"))
            continue
        date_text, ticker, price_text = fields
        day = parse_date(date_text)
        close, price_problem = parse_price(price_text)
        if price_problem:
            errors.append((line, price_problem))
        if not ticker:
            errors.append((line, "missing ticker"))
        elif ticker not in known:
            errors.append((line, f"unknown ticker '{ticker}'"))
        if day is None:
            errors.append((line, f"unparsable date '{date_text}' (expected YYYY-MM-DD)"))
        elif ticker:
            first = first_seen.setdefault((ticker, day), line)
            if first != line:
                errors.append((line, f"duplicate row for {ticker} on {day} (first seen on line {first})"))
        if day is not None and close is not None and ticker in known:
            rows.append(PriceRow(line, day, ticker, close))
    if errors:
        errors.sort()
        shown = [f"line {line}: {reason}" for line, reason in errors[:MAX_REPORTED_ERRORS]]
        raise PriceFileError(shown, total=len(errors))
    if not rows:
        raise PriceFileError(["the file has a header but no rows"])
    return rows


def wide_prices(rows: Iterable[tuple[str, object, float]]) -> pd.DataFrame:
    """(ticker, date, close) rows into a date x ticker frame of floats, for estimation."""
    frame = pd.DataFrame(list(rows), columns=["ticker", "date", "close"])
    if frame.empty:
        return pd.DataFrame()
    frame["date"] = pd.to_datetime(frame["date"])
    frame["close"] = frame["close"].astype(float)
    return frame.pivot(index="date", columns="ticker", values="close").sort_index()
