"""Reading and validating a price file (pure: pandas, no Django).

A price file is CSV, optionally gzipped, with the header ``date,ticker,adj_close``.
Line numbers in messages count the header as line 1.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pandas as pd

COLUMNS = ("date", "ticker", "adj_close")
PRICE_PLACES = Decimal("0.000001")
MAX_REPORTED_ERRORS = 50


@dataclass(frozen=True)
class PriceRow:
    line: int
    date: pd.Timestamp
    ticker: str
    close: Decimal


class PriceFileError(ValueError):
    def __init__(self, errors: list[str], total: int | None = None) -> None:
        self.errors = errors
        self.total = total if total is not None else len(errors)
        more = f"\n... and {self.total - len(errors)} more" if self.total > len(errors) else ""
        super().__init__("\n".join(errors) + more)


def read_price_file(path: str | Path, *, known_tickers: Iterable[str]) -> list[PriceRow]:
    """Parse and validate every row; raise ``PriceFileError`` naming each bad line and why."""
    path = Path(path)
    if not path.exists():
        raise PriceFileError([f"{path}: no such file"])
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            import gzip

            raw = gzip.decompress(raw)
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise PriceFileError([f"{path}: cannot be read as UTF-8 CSV ({exc})"]) from exc
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PriceFileError([f"{path}: not a valid CSV file ({exc})"]) from exc
    header = tuple(c.strip() for c in frame.columns)
    if header != COLUMNS:
        raise PriceFileError([f"line 1: header must be {','.join(COLUMNS)}, found {','.join(header)}"])
    return validate_rows(frame, known_tickers=set(known_tickers))


def validate_rows(frame: pd.DataFrame, *, known_tickers: set[str]) -> list[PriceRow]:
    errors: list[tuple[int, str]] = []
    lines = frame.index.to_numpy() + 2
    tickers = frame["ticker"].str.strip()
    dates = pd.to_datetime(frame["date"].str.strip(), format="%Y-%m-%d", errors="coerce")

    for line, value in zip(lines[dates.isna().to_numpy()], frame["date"][dates.isna()], strict=True):
        errors.append((int(line), f"unparsable date '{value}' (expected YYYY-MM-DD)"))
    for line, value in zip(lines[(tickers == "").to_numpy()], tickers[tickers == ""], strict=True):
        errors.append((int(line), f"missing ticker{value}"))
    unknown = (tickers != "") & ~tickers.isin(known_tickers)
    for line, value in zip(lines[unknown.to_numpy()], tickers[unknown], strict=True):
        errors.append((int(line), f"unknown ticker '{value}'"))

    closes: list[Decimal | None] = []
    for line, text in zip(lines, frame["adj_close"].str.strip(), strict=True):
        if text == "":
            errors.append((int(line), "missing price"))
            closes.append(None)
            continue
        try:
            value = Decimal(text)
        except InvalidOperation:
            errors.append((int(line), f"price '{text}' is not a number"))
            closes.append(None)
            continue
        if not value.is_finite():
            errors.append((int(line), f"price '{text}' is not a finite number"))
            closes.append(None)
        elif value <= 0:
            errors.append((int(line), f"price {text} is not positive"))
            closes.append(None)
        else:
            closes.append(value.quantize(PRICE_PLACES))

    keys = pd.DataFrame({"ticker": tickers, "date": dates})
    duplicated = keys.duplicated(keep="first") & dates.notna()
    first_line: dict[tuple[str, pd.Timestamp], int] = {}
    for line, ticker, date in zip(lines, tickers, dates, strict=True):
        first_line.setdefault((ticker, date), int(line))
    for line, ticker, date in zip(lines[duplicated.to_numpy()], tickers[duplicated], dates[duplicated], strict=True):
        errors.append(
            (
                int(line),
                f"duplicate row for {ticker} on {date.date()} (first seen on line {first_line[(ticker, date)]})",
            )
        )

    if errors:
        errors.sort()
        shown = [f"line {line}: {reason}" for line, reason in errors[:MAX_REPORTED_ERRORS]]
        raise PriceFileError(shown, total=len(errors))
    if frame.empty:
        raise PriceFileError(["the file has a header but no rows"])
    return [
        PriceRow(int(line), date, ticker, close)
        for line, date, ticker, close in zip(lines, dates, tickers, closes, strict=True)
        if close is not None
    ]


def wide_prices(rows: Iterable[tuple[str, object, float]]) -> pd.DataFrame:
    """(ticker, date, close) rows into a date x ticker frame of floats, for estimation."""
    frame = pd.DataFrame(list(rows), columns=["ticker", "date", "close"])
    if frame.empty:
        return pd.DataFrame()
    frame["date"] = pd.to_datetime(frame["date"])
    frame["close"] = frame["close"].astype(float)
    return frame.pivot(index="date", columns="ticker", values="close").sort_index()
