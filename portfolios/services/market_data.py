from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from django.db import transaction

from compliance.audit import audit_record

from ..models import Asset, Price
from ..prices import PriceFileError, read_price_file

BATCH = 5000
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ImportResult:
    rows: int
    inserted: int
    unchanged: int
    first_date: date | None
    last_date: date | None


def prices_import(*, path: str | Path, progress: Progress | None = None) -> ImportResult:
    """Validate a whole price file, then insert its new rows in one transaction.

    Raises ``PriceFileError`` naming each bad line; nothing is written then.
    A row already stored with the same price is left alone, so re-importing a file changes nothing;
    a row stored with a different price is an error (prices are corrected explicitly, not overwritten).
    """
    assets = dict(Asset.objects.values_list("ticker", "id"))
    rows = read_price_file(path, known_tickers=assets)
    if progress:
        progress("validated", len(rows), len(rows))
    asset_ids = {assets[r.ticker] for r in rows}
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    # Read what is stored and insert in one transaction, so a concurrent import cannot slip between.
    with transaction.atomic():
        stored = {
            (asset_id, day): close
            for asset_id, day, close in Price.objects.filter(asset_id__in=asset_ids).values_list(
                "asset_id", "date", "close"
            )
        }
        conflicts = []
        new: list[Price] = []
        for r in rows:
            key = (assets[r.ticker], r.date)
            if key in stored:
                if stored[key] != r.close:
                    conflicts.append(
                        f"line {r.line}: {r.ticker} {key[1]} is stored as {stored[key]}, the file says {r.close}"
                    )
                continue
            new.append(Price(asset_id=key[0], date=key[1], close=r.close))
        if conflicts:
            raise PriceFileError(conflicts[:50], total=len(conflicts))
        for start in range(0, len(new), BATCH):
            Price.objects.bulk_create(new[start : start + BATCH])
            if progress:
                progress("inserted", min(start + BATCH, len(new)), len(new))
        if new:
            audit_record(
                actor=None,
                action="prices.imported",
                object_type="file",
                object_id=Path(path).name,
                payload={"sha256": digest, "rows": len(rows), "inserted": len(new)},
            )
    dates = [r.date for r in rows]
    return ImportResult(
        rows=len(rows),
        inserted=len(new),
        unchanged=len(rows) - len(new),
        first_date=min(dates) if dates else None,
        last_date=max(dates) if dates else None,
    )
