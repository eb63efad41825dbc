"""Importing prices: the pure validator, the atomic ``import_prices`` command, and the shipped data file.

The corpus in ``tests/data/bad_prices/`` holds one small bad file per failure; ``EXPECTED.json``
maps each file to the exact errors ``read_price_file`` must report (line 1 is the header).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import re
from datetime import date, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.models import AuditEvent
from portfolios import services
from portfolios.models import Asset, Price
from portfolios.prices import MAX_REPORTED_ERRORS, PriceFileError, PriceRow, read_price_file
from portfolios.services.market_data import prices_import
from portfolios.universe import ASSETS

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "bad_prices"
EXPECTED: dict[str, list[str]] = {
    name: messages
    for name, messages in json.loads((CORPUS / "EXPECTED.json").read_text()).items()
    if not name.startswith("_")
}
BAD_FILES = sorted(EXPECTED)
SHIPPED = ROOT / "portfolios" / "data" / "etf_prices.csv.gz"
SHIPPED_ROWS = 147_815
KNOWN = frozenset(ticker for ticker, *_ in ASSETS)
HEADER = "date,ticker,adj_close\n"
LAST_SHIPPED_DAY = date(2026, 7, 31)


def expected_errors(name: str) -> tuple[Path, list[str]]:
    path = CORPUS / name
    return path, [message.replace("{path}", str(path)) for message in EXPECTED[name]]


def counts() -> tuple[int, int]:
    return Price.objects.count(), AuditEvent.objects.count()


def run_import(path: Path) -> list[str]:
    out = StringIO()
    call_command("import_prices", str(path), stdout=out)
    return out.getvalue().splitlines()


def write(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- the corpus of bad files -----------------------------------------------------------


def test_corpus_and_expected_list_the_same_files() -> None:
    on_disk = {p.name for p in CORPUS.iterdir() if p.name != "EXPECTED.json"}
    assert on_disk == set(EXPECTED)


def test_corpus_gzip_file_is_really_gzipped() -> None:
    assert (CORPUS / "gzipped_negative.csv.gz").read_bytes()[:2] == b"\x1f\x8b"


@pytest.mark.parametrize("name", BAD_FILES)
def test_read_price_file_names_every_bad_line(name: str) -> None:
    path, expected = expected_errors(name)
    with pytest.raises(PriceFileError) as caught:
        read_price_file(path, known_tickers=KNOWN)
    assert caught.value.errors == expected
    assert caught.value.total == len(expected)
    assert str(caught.value) == "\n".join(expected)


@pytest.mark.parametrize("name", BAD_FILES)
def test_command_rejects_bad_file_and_writes_nothing(db: None, name: str) -> None:
    path, expected = expected_errors(name)
    before = counts()
    with pytest.raises(CommandError) as caught:
        run_import(path)
    assert str(caught.value) == f"{path}: rejected, nothing imported.\n" + "\n".join(expected)
    assert counts() == before
    assert not Price.objects.filter(date__gt=LAST_SHIPPED_DAY).exists()
    assert not AuditEvent.objects.filter(action="prices.imported").exists()


def test_known_tickers_are_the_seeded_assets(db: None) -> None:
    """The pure tests use universe.ASSETS; the command uses the Asset table: they must agree."""
    assert set(Asset.objects.values_list("ticker", flat=True)) == KNOWN
    assert "ZZZZ" not in KNOWN


def test_command_on_missing_file(db: None, tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    before = counts()
    with pytest.raises(CommandError) as caught:
        run_import(path)
    assert str(caught.value) == f"{path}: rejected, nothing imported.\n{path}: no such file"
    assert counts() == before


def test_errors_beyond_the_cap_are_counted_not_listed(tmp_path: Path) -> None:
    bad = 60
    days = [date(2026, 8, 3) + timedelta(days=i) for i in range(bad)]
    path = write(tmp_path, HEADER + "".join(f"{day},SPY,-{i + 1}\n" for i, day in enumerate(days)))
    with pytest.raises(PriceFileError) as caught:
        read_price_file(path, known_tickers=KNOWN)
    error = caught.value
    assert error.errors == [f"line {i + 2}: price -{i + 1} is not positive" for i in range(MAX_REPORTED_ERRORS)]
    assert error.total == bad
    assert str(error).endswith(f"\n... and {bad - MAX_REPORTED_ERRORS} more")


def test_errors_are_sorted_by_line_then_reason(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2026-08-03,SPY,1\nbad,ZZZZ,-1\n2026-08-03,SPY,1\n")
    with pytest.raises(PriceFileError) as caught:
        read_price_file(path, known_tickers=KNOWN)
    assert caught.value.errors == [
        "line 3: price -1 is not positive",
        "line 3: unknown ticker 'ZZZZ'",
        "line 3: unparsable date 'bad' (expected YYYY-MM-DD)",
        "line 4: duplicate row for SPY on 2026-08-03 (first seen on line 2)",
    ]


# --- a good file ---------------------------------------------------------------------------

GOOD = HEADER + "2026-08-03,SPY,512.25\n2026-08-03,AGG,98.4\n 2026-08-04 , SPY , 513.123456 \n"
GOOD_CLOSES = {
    ("SPY", date(2026, 8, 3)): Decimal("512.250000"),
    ("AGG", date(2026, 8, 3)): Decimal("98.400000"),
    ("SPY", date(2026, 8, 4)): Decimal("513.123456"),
}


def new_closes() -> dict[tuple[str, date], Decimal]:
    return {
        (ticker, day): close
        for ticker, day, close in Price.objects.filter(date__gt=LAST_SHIPPED_DAY).values_list(
            "asset__ticker", "date", "close"
        )
    }


def test_read_price_file_parses_a_good_file(tmp_path: Path) -> None:
    rows = read_price_file(write(tmp_path, GOOD), known_tickers=KNOWN)
    assert rows == [
        PriceRow(2, date.fromisoformat("2026-08-03"), "SPY", Decimal("512.250000")),
        PriceRow(3, date.fromisoformat("2026-08-03"), "AGG", Decimal("98.400000")),
        PriceRow(4, date.fromisoformat("2026-08-04"), "SPY", Decimal("513.123456")),
    ]
    assert [str(r.close) for r in rows] == ["512.250000", "98.400000", "513.123456"]


def test_good_file_imports_once_and_reimport_changes_nothing(db: None, tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    prices_before, audit_before = counts()

    lines = run_import(path)

    assert lines[:4] == [
        f"{path}: validating ...",
        "  validated 3/3 rows (100%)",
        "  inserted 3/3 rows (100%)",
        f"{path}: 3 rows (2026-08-03 to 2026-08-04): 3 inserted, 0 already stored.",
    ]
    assert re.fullmatch(r"done in \d+\.\ds", lines[4])
    assert len(lines) == 5
    assert new_closes() == GOOD_CLOSES
    assert counts() == (prices_before + 3, audit_before + 1)
    event = AuditEvent.objects.latest("id")
    assert event.action == "prices.imported"
    assert (event.actor_id, event.actor_label) == (None, "system")
    assert (event.object_type, event.object_id) == ("file", "prices.csv")
    assert event.payload == {"sha256": hashlib.sha256(GOOD.encode()).hexdigest(), "rows": 3, "inserted": 3}

    again = run_import(path)

    assert again[:3] == [
        f"{path}: validating ...",
        "  validated 3/3 rows (100%)",
        f"{path}: 3 rows (2026-08-03 to 2026-08-04): 0 inserted, 3 already stored.",
    ]
    assert counts() == (prices_before + 3, audit_before + 1)
    assert new_closes() == GOOD_CLOSES


def test_gzipped_good_file_imports(db: None, tmp_path: Path) -> None:
    path = tmp_path / "prices.csv.gz"
    path.write_bytes(gzip.compress(GOOD.encode()))
    result = prices_import(path=path)
    assert (result.rows, result.inserted, result.unchanged) == (3, 3, 0)
    assert (result.first_date, result.last_date) == (date(2026, 8, 3), date(2026, 8, 4))
    assert new_closes() == GOOD_CLOSES


def latest_spy() -> Price:
    return Price.objects.filter(asset__ticker="SPY").latest("date")


def test_row_already_stored_with_the_same_price_is_unchanged(db: None, tmp_path: Path) -> None:
    stored = latest_spy()
    # Written without trailing zeros: the same price, a different spelling.
    text = HEADER + f"{stored.date},SPY,{stored.close.normalize():f}\n2026-08-03,AGG,98.4\n"
    before_prices, before_audit = counts()
    result = prices_import(path=write(tmp_path, text))
    assert (result.rows, result.inserted, result.unchanged) == (2, 1, 1)
    assert counts() == (before_prices + 1, before_audit + 1)
    assert AuditEvent.objects.latest("id").payload["inserted"] == 1
    assert latest_spy().close == stored.close


def test_conflicting_reimport_is_rejected_and_writes_nothing(db: None, tmp_path: Path) -> None:
    stored = latest_spy()
    assert stored.date == LAST_SHIPPED_DAY
    changed = stored.close + Decimal("1.5")
    path = write(tmp_path, HEADER + f"2026-08-03,AGG,98.4\n{stored.date},SPY,{changed}\n")
    before = counts()
    with pytest.raises(CommandError) as caught:
        run_import(path)
    assert str(caught.value) == (
        f"{path}: rejected, nothing imported.\n"
        f"line 3: SPY {stored.date} is stored as {stored.close.quantize(Decimal('0.000001'))}, "
        f"the file says {changed.quantize(Decimal('0.000001'))}"
    )
    assert counts() == before
    assert not Price.objects.filter(date__gt=LAST_SHIPPED_DAY).exists()
    assert latest_spy().close == stored.close


def test_failure_after_insert_rolls_the_rows_back(db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_audit(**kwargs: object) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(services.market_data, "audit_record", broken_audit)
    before = counts()
    with pytest.raises(RuntimeError, match="audit log unavailable"):
        prices_import(path=write(tmp_path, GOOD))
    assert counts() == before
    assert new_closes() == {}


def test_progress_reports_each_batch(db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.market_data, "BATCH", 2)
    calls: list[tuple[str, int, int]] = []
    prices_import(path=write(tmp_path, GOOD), progress=lambda *a: calls.append(a))
    assert calls == [("validated", 3, 3), ("inserted", 2, 3), ("inserted", 3, 3)]
    assert new_closes() == GOOD_CLOSES


# --- the shipped data file -------------------------------------------------------------------


def test_shipped_price_file_validates() -> None:
    rows = read_price_file(SHIPPED, known_tickers=KNOWN)
    assert len(rows) == SHIPPED_ROWS
    assert rows[0] == PriceRow(2, date.fromisoformat("1993-01-29"), "SPY", Decimal("24.113260"))
    assert rows[-1] == PriceRow(SHIPPED_ROWS + 1, date.fromisoformat("2026-07-31"), "SHV", Decimal("110.400000"))
    # The main file holds the 26 core funds; the 31 alternatives come in etf_prices_extra.csv.gz.
    assert len({r.ticker for r in rows}) == 26 and {r.ticker for r in rows} <= KNOWN
    assert max(r.date for r in rows) == LAST_SHIPPED_DAY
    assert all(r.close > 0 for r in rows)


# --- property: a non-positive price anywhere is reported on its own line ------------------

TICKERS = sorted(KNOWN)
POSITIVE = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("99999"), places=6)
NON_POSITIVE = st.one_of(
    st.decimals(min_value=Decimal("-1e6"), max_value=Decimal(0), allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["0", "-0", "0.0", "-0.000000", "0E+3", "-1E+2", "-0.0000001"]),
)


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    good=st.lists(st.tuples(st.sampled_from(TICKERS), POSITIVE), max_size=25),
    position=st.integers(min_value=0),
    ticker=st.sampled_from(TICKERS),
    price=NON_POSITIVE,
    pad=st.sampled_from(["", " ", "  "]),
)
def test_non_positive_price_is_reported_on_its_line(
    tmp_path: Path,
    good: list[tuple[str, Decimal]],
    position: int,
    ticker: str,
    price: str,
    pad: str,
) -> None:
    # Distinct dates keep every (ticker, date) unique; the bad row's date is after all of them.
    lines = [f"{date(2026, 8, 3) + timedelta(days=i)},{t},{p}" for i, (t, p) in enumerate(good)]
    position %= len(lines) + 1
    lines.insert(position, f"2027-01-04,{ticker},{pad}{price}{pad}")
    path = write(tmp_path, HEADER + "\n".join(lines) + "\n")
    with pytest.raises(PriceFileError) as caught:
        read_price_file(path, known_tickers=KNOWN)
    assert caught.value.errors == [f"line {position + 2}: price {price} is not positive"]


# --- defects found in review, fixed: each stays as a regression test -----------------------


def test_line_numbers_count_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2026-08-03,SPY,1\n\n2026-08-04,SPY,-1\n")
    with pytest.raises(PriceFileError) as caught:
        read_price_file(path, known_tickers=KNOWN)
    assert "line 4: price -1 is not positive" in caught.value.errors


def test_header_with_spaces_is_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, " date , ticker , adj_close\n2026-08-03,SPY,1\n")
    with contextlib.suppress(PriceFileError):  # rejecting it is fine; a KeyError is not
        read_price_file(path, known_tickers=KNOWN)


def test_every_row_with_an_extra_field_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2026-08-03,SPY,1,x\n2026-08-04,SPY,2,y\n")
    with pytest.raises(PriceFileError):
        read_price_file(path, known_tickers=KNOWN)


def test_price_that_rounds_to_zero_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2026-08-03,SPY,0.0000004\n")
    with pytest.raises(PriceFileError) as caught:
        read_price_file(path, known_tickers=KNOWN)
    assert caught.value.errors[0].startswith("line 2: ")


def test_command_rejects_price_that_rounds_to_zero(db: None, tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2026-08-03,SPY,0.0000004\n")
    with pytest.raises(CommandError, match="line 2: "):
        run_import(path)


def test_huge_price_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2026-08-03,SPY,1e30\n")
    with pytest.raises(PriceFileError):
        read_price_file(path, known_tickers=KNOWN)


def test_price_too_large_for_the_column_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "2026-08-03,SPY,1000000000000\n")
    with pytest.raises(PriceFileError):
        read_price_file(path, known_tickers=KNOWN)


def test_corrupt_gzip_is_an_error_not_a_crash(tmp_path: Path) -> None:
    data = gzip.compress((HEADER + "2026-08-03,SPY,1\n" * 50).encode(), mtime=0)
    path = tmp_path / "prices.csv.gz"
    path.write_bytes(data[:20] + bytes(b ^ 0xFF for b in data[20:40]) + data[40:])
    with pytest.raises(PriceFileError):
        read_price_file(path, known_tickers=KNOWN)
