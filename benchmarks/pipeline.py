"""Benchmark: one nightly pipeline date on Postgres for 100,000 synthetic accounts with one worker.

A book of its own (``bench-<accounts>``; the live book and other books are not read or written) of synthetic
investors, created once and reused by later runs (fixed seed): about 1.7 accounts per investor, risk profiles at
levels 1 to 10, preferences for most (marginal tax rates, now and then an ESG screen), 75% of first accounts
taxable and the others IRAs, each funded with cash (8% with a new deposit to invest) and tax lots of the funds of
its personal target: 1 to 3 lots per fund bought up to four years ago at a basis the price has moved from (some
accounts at a loss, to harvest), drifted since (10% of accounts far out of band), 1% of positions held in a
harvest substitute, 2% of accounts with a pending withdrawal and 2% of investors with a loss sale in the last
30 days (wash-sale state). Lots point to one seed fill (the schema wants the fill that created a lot; the
pipeline never reads it). Setup writes with COPY and is timed apart from the headline.

The headline is ``pipeline_run(book=..., dispatch="inline")`` for the date, in this process (one worker), end to
end: prepare (price checks, deposits due, the model portfolios of the date), every chunk (reads, personal
targets, the engine, exact trades, the writes: recommendations, trades, compliance findings and audit events)
and finish. Previous runs of the benchmark's books (``bench-...``) for the date are deleted first, and on a
database of benchmark books only (run it on its own database) the date's optimization run and personal targets
too, so each run computes the date from scratch as the first run of a new market date does (audit events are
never deleted: they accumulate; rows written are counted from the run's own ids, audit events after the last one
before the run, so nothing else should write to the database meanwhile). Per-stage times, accounts and rows
written per second are printed with the load average and the CPU of the process and of its Postgres backend.

The ceiling: the rows the run wrote (recommendations, trades, findings, audit events) are read back and written
again with ``COPY ... FROM STDIN`` into copies of their tables (same columns, defaults, checks, indexes and
foreign keys), in one transaction timed to its commit, three times (the fastest counts); the rows per second of
that COPY against the pipeline's.

    DATABASE_URL=postgres://... .venv/bin/python benchmarks/pipeline.py [--accounts N] [--profile FILE]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")

import django  # noqa: E402 - after the path set-up, so the script runs from anywhere

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import ProtectedError  # noqa: E402

from advisor.db import bulk_insert, reserve_ids  # noqa: E402
from advisor.models import Role, User  # noqa: E402
from compliance.models import AuditEvent, Finding  # noqa: E402
from portfolios.models import (  # noqa: E402
    Account,
    AccountType,
    Asset,
    CashMovement,
    CashMovementKind,
    Fill,
    GainTerm,
    Lot,
    LotMethod,
    ModelPortfolio,
    OptimizationRun,
    Order,
    OrderStatus,
    PersonalTarget,
    PipelineChunk,
    PipelineRun,
    Price,
    RealizedGain,
    Recommendation,
    RecommendationKind,
    RecommendationStatus,
    RunStatus,
    Trade,
    TradeSide,
    WithdrawalRequest,
    WithdrawalStatus,
)
from portfolios.selectors import market_date_latest, prices_as_of  # noqa: E402
from portfolios.services import pipeline as pipeline_module  # noqa: E402
from portfolios.services import pipeline_chunk as chunk_module  # noqa: E402
from portfolios.services.optimization import model_portfolios_build  # noqa: E402
from portfolios.services.targets import personal_targets_build  # noqa: E402
from profiling.models import Preferences, RiskProfile  # noqa: E402

SEED = 20261206
ACCOUNTS = 100_000
TARGET_SECONDS = 300
PRICE_FILES = ("portfolios/data/etf_prices.csv.gz", "portfolios/data/etf_prices_extra.csv.gz")
LEVEL_SHARES = np.array([0.02, 0.04, 0.08, 0.12, 0.16, 0.18, 0.16, 0.12, 0.08, 0.04])  # levels 1 to 10
BRACKETS = ("0.10", "0.12", "0.22", "0.24", "0.32", "0.35", "0.37")
SCREENS = (["tobacco"], ["weapons"], ["fossil_fuels"], ["fossil_fuels", "weapons", "tobacco"])
TARGETS_BATCH = 20_000
COPY_REPEATS = 3


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def backend_cpu() -> tuple[int, float]:
    """This connection's Postgres backend and the CPU seconds it has used so far (the server runs here)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return pid, float("nan")  # a server on another host
    return pid, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def say(message: str) -> None:
    print(message, flush=True)


# --- the synthetic book ----------------------------------------------------------------------------------------


def book_accounts(rng: np.random.Generator, accounts: int) -> dict[str, np.ndarray]:
    """Who owns which account and what kind it is (drawn first, so the book is the same whatever came before)."""
    new_owner = rng.random(accounts) < 0.6
    new_owner[0] = True
    owner = np.cumsum(new_owner) - 1  # about 1.7 accounts per owner, adjacent
    owners = int(owner[-1]) + 1
    first = new_owner
    kind = np.where(
        first,
        np.where(rng.random(accounts) < 0.75, 0, 1),  # an owner's first account: taxable or a traditional IRA
        rng.choice([0, 1, 2], size=accounts, p=[0.3, 0.35, 0.35]),
    )
    level = rng.choice(np.arange(1, 11), size=owners, p=LEVEL_SHARES)
    has_preferences = rng.random(owners) < 0.7
    bracket = rng.integers(0, len(BRACKETS), size=owners)
    screened = rng.random(owners) < 0.03
    screen = rng.integers(0, len(SCREENS), size=owners)
    lot_method = rng.choice([0, 1, 2], size=accounts, p=[0.9, 0.05, 0.05])
    return {
        "owner": owner,
        "kind": kind,
        "level": level,
        "has_preferences": has_preferences,
        "bracket": bracket,
        "screened": screened & has_preferences,
        "screen": screen,
        "lot_method": lot_method,
    }


def investors_create(book: str, drawn: dict[str, np.ndarray]) -> list[int]:
    """Users, risk profiles, preferences and accounts of the book, with COPY; returns the account ids."""
    now = datetime.now(UTC)
    owner = drawn["owner"]
    owners = int(owner[-1]) + 1
    user_ids = reserve_ids(User, owners)
    bulk_insert(
        User,
        ["id", "password", "is_superuser", "email", "full_name", "role", "is_active", "is_staff", "date_joined"],
        (
            (uid, "!", False, f"{book}-{i}@bench.invalid", f"Benchmark investor {i}", Role.INVESTOR, True, False, now)
            for i, uid in enumerate(user_ids)
        ),
    )
    levels = drawn["level"].tolist()
    bulk_insert(
        RiskProfile,
        [
            "investor_id",
            "version",
            "source",
            "reason",
            "questionnaire_version",
            "answers",
            "tolerance_score",
            "capacity_score",
            "tolerance_level",
            "capacity_level",
            "risk_level",
            "behavioural_adjustment",
            "effective_risk_level",
            "limited_by",
            "drivers",
            "flags",
            "review_comment",
            "created_at",
        ],
        (
            (
                uid,
                1,
                "questionnaire",
                "",
                "benchmark",
                {},
                f"{level * 10}.00",
                f"{level * 10}.00",
                level,
                level,
                level,
                0,
                level,
                "tolerance",
                [],
                [],
                "",
                now,
            )
            for uid, level in zip(user_ids, levels, strict=True)
        ),
    )
    bulk_insert(
        Preferences,
        [
            "investor_id",
            "version",
            "esg_exclusions",
            "account_types",
            "marginal_tax_rate",
            "liquidity_need",
            "created_at",
        ],
        (
            (uid, 1, SCREENS[screen] if screened else [], [], BRACKETS[bracket], "none", now)
            for uid, has, screened, screen, bracket in zip(
                user_ids,
                drawn["has_preferences"].tolist(),
                drawn["screened"].tolist(),
                drawn["screen"].tolist(),
                drawn["bracket"].tolist(),
                strict=True,
            )
            if has
        ),
    )
    types = (AccountType.TAXABLE, AccountType.TRADITIONAL_IRA, AccountType.ROTH_IRA)
    methods = (LotMethod.TAX_MINIMIZING, LotMethod.HIFO, LotMethod.FIFO)
    account_ids = reserve_ids(Account, len(owner))
    bulk_insert(
        Account,
        ["id", "owner_id", "name", "account_type", "lot_method", "book", "created_at"],
        (
            (aid, user_ids[o], f"{types[k].label} {aid}", types[k].value, methods[m].value, book, now)
            for aid, o, k, m in zip(
                account_ids, owner.tolist(), drawn["kind"].tolist(), drawn["lot_method"].tolist(), strict=True
            )
        ),
    )
    return account_ids


def seed_fill(book: str, market_date: date, account_id: int) -> int:
    """The one fill every synthetic lot points to: a recommendation executed long ago in a book of its own."""
    optimization, _ = OptimizationRun.objects.get_or_create(
        fingerprint="benchmark-seed",
        defaults={"as_of": market_date, "data_hash": "0" * 64, "status": RunStatus.FAILED},
    )
    portfolio, _ = ModelPortfolio.objects.get_or_create(
        run=optimization,
        risk_level=5,
        defaults={"risk_aversion": 1.0, "expected_return": 0, "volatility": 0, "solver_status": "benchmark"},
    )
    run = PipelineRun.objects.create(
        book=f"{book}-seed", market_date=market_date - timedelta(days=1500), status=RunStatus.SUCCEEDED
    )
    asset = Asset.objects.get(ticker="BIL")
    rec = Recommendation.objects.create(
        account_id=account_id,
        pipeline_run=run,
        model_portfolio=portfolio,
        kind=RecommendationKind.INVEST_CASH,
        status=RecommendationStatus.EXECUTED,
        risk_level=5,
        market_date=run.market_date,
        explanation="benchmark seed",
        total_value=0,
        cash_before=0,
        estimated_cost=0,
    )
    trade = Trade.objects.create(
        recommendation=rec, asset=asset, side=TradeSide.BUY, quantity=1, price=1, amount=1, cash_effect=-1
    )
    order = Order.objects.create(
        trade=trade,
        recommendation=rec,
        account_id=account_id,
        asset=asset,
        side=TradeSide.BUY,
        quantity=1,
        idempotency_key=f"benchmark-seed-{book}",
        status=OrderStatus.FILLED,
    )
    fill = Fill.objects.create(order=order, quantity=1, price=1, gross_amount=1, cost=0, market_date=run.market_date)
    return fill.pk


def funding_create(book: str, market_date: date, rng: np.random.Generator, drawn: dict[str, np.ndarray]) -> None:
    """Cash, lots, pending withdrawals and recent loss sales, shaped on each account's personal target."""
    now = datetime.now(UTC)
    accounts = list(
        Account.objects.filter(book=book).order_by("id").values_list("id", "owner_id", "name", "account_type")
    )
    n = len(accounts)
    owner_of = np.array([a[1] for a in accounts], dtype=np.int64)
    level = drawn["level"][drawn["owner"]]
    # The holdings follow the personal targets the pipeline will compute (the date's model portfolios under
    # each investor's constraints); they are solved here once and deleted before the timed run.
    optimization = model_portfolios_build(as_of=market_date)
    target_of: dict[int, PersonalTarget] = {}
    failures: list[str] = []
    for start in range(0, n, TARGETS_BATCH):
        batch = accounts[start : start + TARGETS_BATCH]
        target_of.update(
            personal_targets_build(
                optimization_run=optimization,
                accounts_with_levels=[
                    (Account(id=i, owner_id=o, name=name, account_type=t, book=book), int(level[start + j]))
                    for j, (i, o, name, t) in enumerate(batch)
                ],
                failures=failures,
            )
        )
    if failures:
        say(f"  {len(failures)} accounts without a personal target (funded with cash only), e.g. {failures[0]}")

    assets = list(Asset.objects.order_by("id").values_list("id", "ticker", "substitute_id"))
    index = {asset_id: i for i, (asset_id, _, _) in enumerate(assets)}
    column = {ticker: i for i, (_, ticker, _) in enumerate(assets)}
    closes = prices_as_of(market_date)
    price = np.array([float(closes[a][0]) if a in closes else np.nan for a, _, _ in assets])
    substitute = np.array([index.get(s, -1) if s else -1 for _, _, s in assets], dtype=np.int64)
    substitute = np.where((substitute >= 0) & ~np.isnan(price[np.maximum(substitute, 0)]), substitute, -1)
    targets = sorted({t.pk: t for t in target_of.values()}.values(), key=lambda t: t.pk)
    row_of_target = {t.pk: r for r, t in enumerate(targets)}
    weights = np.zeros((len(targets) + 1, len(assets)))  # the last row: no target
    for r, t in enumerate(targets):
        for ticker, weight in t.weights.items():
            weights[r, column[ticker]] = float(weight)
    target_row = np.array([row_of_target[target_of[a[0]].pk] if a[0] in target_of else len(targets) for a in accounts])

    value = np.exp(rng.normal(np.log(60_000), 1.0, size=n))
    held_account, held_asset = np.nonzero(weights[target_row] > 0)
    held_weight = weights[target_row][held_account, held_asset]
    drift = np.exp(rng.normal(0, 0.04, size=len(held_account)))  # the market since the last rebalance
    far = rng.random(n) < 0.10
    drift *= np.where(far[held_account], np.exp(rng.normal(0, 0.4, size=len(held_account))), 1.0)
    position_value = held_weight * value[held_account] * drift
    use_substitute = (substitute[held_asset] >= 0) & (rng.random(len(held_asset)) < 0.01)
    held_asset = np.where(use_substitute, substitute[held_asset], held_asset)
    lots_per = rng.integers(1, 4, size=len(held_account))
    lot_account = np.repeat(held_account, lots_per)
    lot_asset = np.repeat(held_asset, lots_per)
    lot_price = price[lot_asset]
    quantity = np.maximum(np.floor(np.repeat(position_value / lots_per, lots_per) / lot_price * 1e6) / 1e6, 1e-6)
    account_return = rng.normal(0.12, 0.12, size=n)  # most bought well below today's prices, some at a loss
    basis = np.round(lot_price * np.exp(-account_return[lot_account] + rng.normal(0, 0.05, size=len(lot_account))), 2)
    age = rng.integers(1, 1500, size=len(lot_account))
    age = np.where(np.repeat(use_substitute, lots_per), rng.integers(20, 120, size=len(lot_account)), age)
    ordinal = market_date.toordinal()

    fill_id = seed_fill(book, market_date, accounts[0][0])
    account_id = np.array([a[0] for a in accounts], dtype=np.int64)
    asset_id = np.array([a[0] for a in assets], dtype=np.int64)
    lot_rows = zip(
        account_id[lot_account].tolist(),
        asset_id[lot_asset].tolist(),
        [f"{q:.6f}" for q in quantity.tolist()],
        [f"{b:.2f}" for b in basis.tolist()],
        [date.fromordinal(ordinal - int(a)) for a in age.tolist()],
        strict=True,
    )
    lots = bulk_insert(
        Lot,
        [
            "account_id",
            "asset_id",
            "original_quantity",
            "quantity",
            "cost_per_share",
            "acquired_on",
            "wash_sale_adjustment",
            "fill_id",
        ],
        ((a, s, q, q, b, acquired, "0", fill_id) for a, s, q, b, acquired in lot_rows),
    )

    cash = np.round(value * rng.uniform(0.0005, 0.008, size=n), 2)
    deposit = rng.random(n) < 0.08
    cash[deposit] += np.round(rng.uniform(500, 20_000, size=int(deposit.sum())), 2)
    cash[target_row == len(targets)] = np.round(value[target_row == len(targets)], 2)
    bulk_insert(
        CashMovement,
        ["account_id", "kind", "amount", "created_at", "description"],
        (
            (a, CashMovementKind.DEPOSIT.value, f"{c:.2f}", now, "benchmark funding")
            for a, c in zip(account_id.tolist(), cash.tolist(), strict=True)
        ),
    )
    withdrawing = np.flatnonzero(rng.random(n) < 0.02)
    amounts = np.round(value[withdrawing] * rng.uniform(0.02, 0.2, size=len(withdrawing)), 2) + cash[withdrawing]
    bulk_insert(
        WithdrawalRequest,
        ["account_id", "amount", "status", "requested_by_id", "requested_at", "note"],
        (
            (int(account_id[i]), f"{amount:.2f}", WithdrawalStatus.PENDING.value, int(owner_of[i]), now, "")
            for i, amount in zip(withdrawing.tolist(), amounts.tolist(), strict=True)
        ),
    )
    # Recent loss sales of 2% of the investors, in a taxable account: the wash-sale rule blocks buying back.
    taxable = [a[0] for a in accounts if a[3] == AccountType.TAXABLE]
    sold = rng.choice(np.array(taxable, dtype=np.int64), size=max(1, len(taxable) // 60), replace=False)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT ON (account_id) id, account_id, asset_id, acquired_on FROM {Lot._meta.db_table} "  # noqa: S608
            "WHERE account_id = ANY(%s) ORDER BY account_id, id",
            [sorted(sold.tolist())],
        )
        first_lots = cursor.fetchall()
    days = rng.integers(1, 29, size=len(first_lots))
    gains = bulk_insert(
        RealizedGain,
        [
            "account_id",
            "lot_id",
            "fill_id",
            "asset_id",
            "quantity",
            "proceeds",
            "cost_basis",
            "gain",
            "term",
            "acquired_on",
            "sold_on",
            "harvest",
            "wash_sale_disallowed",
        ],
        (
            (
                account,
                lot,
                fill_id,
                asset,
                "1.000000",
                "90.00",
                "100.00",
                "-10.00",
                GainTerm.LONG.value,
                acquired,
                market_date - timedelta(days=int(d)),
                True,
                "0",
            )
            for (lot, account, asset, acquired), d in zip(first_lots, days.tolist(), strict=True)
        ),
    )
    say(
        f"  {n:,} accounts funded: {lots:,} lots ({lots / n:.1f} per account), {int(deposit.sum()):,} new deposits, "
        f"{len(withdrawing):,} pending withdrawals, {gains:,} recent loss sales; {len(targets):,} distinct targets"
    )


def book_ensure(book: str, accounts: int, market_date: date) -> None:
    """Create the book unless it is there (each stage in its own transaction: an interrupted setup resumes)."""
    rng = np.random.default_rng(SEED)
    drawn = book_accounts(rng, accounts)
    have = Account.objects.filter(book=book).count()
    if have and have != accounts:
        raise SystemExit(f"book {book} holds {have:,} accounts, not {accounts:,}: choose another --book")
    if not have:
        started = time.perf_counter()
        with transaction.atomic():
            investors_create(book, drawn)
        say(f"  investors and accounts created in {time.perf_counter() - started:.1f} s")
    if not Lot.objects.filter(account__book=book).exists():
        started = time.perf_counter()
        with transaction.atomic():
            funding_create(book, market_date, rng, drawn)
        say(f"  book funded in {time.perf_counter() - started:.1f} s")
    # Fresh statistics after a bulk load, as a nightly database would have them.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def previous_run_forget(market_date: date) -> None:
    """Delete the benchmark books' runs of the date and what they wrote (audit events stay). On a database that
    holds only benchmark books, delete the date's optimization run and personal targets too, so the timed run
    computes the date from scratch; elsewhere they are the live book's and are reused (said so)."""
    for run in PipelineRun.objects.filter(book__startswith="bench-", market_date=market_date):
        with transaction.atomic():
            recommendations = Recommendation.objects.filter(pipeline_run=run)
            Finding.objects.filter(recommendation__in=recommendations).delete()
            Trade.objects.filter(recommendation__in=recommendations).delete()
            recommendations.delete()
            PipelineChunk.objects.filter(run=run).delete()
            run.delete()
    shared = Account.objects.exclude(book__startswith="bench-").exists()
    for optimization in OptimizationRun.objects.filter(as_of=market_date, status=RunStatus.SUCCEEDED):
        if shared:
            say(f"  optimization run {optimization.pk} of {market_date} kept (other books here): targets reused")
            continue
        try:
            with transaction.atomic():
                PersonalTarget.objects.filter(optimization_run=optimization).delete()
                ModelPortfolio.objects.filter(run=optimization).delete()
                optimization.delete()
        except ProtectedError:
            say(f"  optimization run {optimization.pk} of {market_date} is in use: targets reused")


# --- the timed run ---------------------------------------------------------------------------------------------


class Stages:
    """Wall-clock marks of the pipeline's stages, taken by wrapping its stage functions (behaviour unchanged)."""

    def __init__(self) -> None:
        self.prepare = 0.0
        self.finish = 0.0
        self.chunk_walls: list[float] = []
        self._last = 0.0

    @contextmanager
    def installed(self) -> Iterator[None]:
        prepare, finish = pipeline_module._prepare, chunk_module.pipeline_finish

        def timed_prepare(*args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                prepare(*args, **kwargs)
            finally:
                self.prepare = time.perf_counter() - started
                self._last = time.perf_counter()

        def timed_finish(*args: Any, **kwargs: Any) -> PipelineRun:
            started = time.perf_counter()
            try:
                return finish(*args, **kwargs)
            finally:
                self.finish = time.perf_counter() - started

        pipeline_module._prepare = timed_prepare  # type: ignore[assignment]
        chunk_module.pipeline_finish = timed_finish  # type: ignore[assignment]
        try:
            yield
        finally:
            pipeline_module._prepare = prepare  # type: ignore[assignment]
            chunk_module.pipeline_finish = finish  # type: ignore[assignment]

    def progress(self, message: str) -> None:
        if message.startswith("  chunk "):
            now = time.perf_counter()
            self.chunk_walls.append(now - self._last)
            self._last = now
            index = len(self.chunk_walls)
            if index <= 2 or index % 10 == 0:
                say(f"{message}; {load()}")
        else:
            say(message)


def rows_written(run: PipelineRun, first_event: int) -> dict[str, str]:
    """The WHERE clause of each table's rows written by the run."""
    recs = f"SELECT id FROM {Recommendation._meta.db_table} WHERE pipeline_run_id = {run.pk}"  # noqa: S608
    return {
        Recommendation._meta.db_table: f"pipeline_run_id = {run.pk}",
        Trade._meta.db_table: f"recommendation_id IN ({recs})",
        Finding._meta.db_table: f"recommendation_id IN ({recs})",
        AuditEvent._meta.db_table: f"id > {first_event}",
    }


def copy_ceiling(where: dict[str, str]) -> tuple[int, list[float]]:
    """COPY the run's rows into copies of their tables (columns, defaults, checks, indexes, foreign keys), in
    one transaction timed to its commit, ``COPY_REPEATS`` times (emptied in between: the machine is shared, the
    fastest is the ceiling). Returns (rows, seconds of each)."""
    raw = connection.connection
    assert raw is not None
    data: dict[str, bytes] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        for table, condition in where.items():
            buffer = io.BytesIO()
            with raw.cursor() as c, c.copy(f"COPY (SELECT * FROM {table} WHERE {condition}) TO STDOUT") as copy:  # noqa: S608
                for block in copy:
                    buffer.write(block)
            data[table] = buffer.getvalue()
            cursor.execute(f"DROP TABLE IF EXISTS bench_copy_{table}")
            cursor.execute(f"CREATE TABLE bench_copy_{table} (LIKE {table} INCLUDING ALL)")
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
                "AND contype = 'f'",
                [table],
            )
            for name, definition in cursor.fetchall():
                cursor.execute(f"ALTER TABLE bench_copy_{table} ADD CONSTRAINT {name}_copy {definition}")
    rows = sum(block.count(b"\n") for block in data.values())
    seconds = []
    for _ in range(COPY_REPEATS):
        with connection.cursor() as cursor:
            cursor.execute("TRUNCATE " + ", ".join(f"bench_copy_{table}" for table in data))
            cursor.execute("CHECKPOINT")  # the run's own writes flushed first, not during the clock
        started = time.perf_counter()
        with transaction.atomic():
            for table, block in data.items():
                with raw.cursor() as c, c.copy(f"COPY bench_copy_{table} FROM STDIN") as copy:
                    copy.write(block)
        seconds.append(time.perf_counter() - started)
    with connection.cursor() as cursor:
        for table in data:
            cursor.execute(f"DROP TABLE bench_copy_{table}")
    return rows, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=ACCOUNTS)
    parser.add_argument("--book", default="", help="the benchmark's book (default bench-<accounts>)")
    parser.add_argument("--profile", default="", help="write a cProfile of the timed run to this file")
    args = parser.parse_args()
    accounts: int = args.accounts
    book: str = args.book or f"bench-{accounts}"
    if connection.vendor != "postgresql":
        raise SystemExit(
            "benchmarks/pipeline.py measures the pipeline on Postgres: set DATABASE_URL=postgres://... "
            f"(this settings module uses {connection.vendor})"
        )
    say(f"machine: {load()}; database {connection.settings_dict['NAME']} on {connection.settings_dict['HOST']}")
    setup_started = time.perf_counter()
    if not Price.objects.exists():
        say("importing the shipped prices ...")
        call_command("import_prices", *[str(ROOT / f) for f in PRICE_FILES], stdout=io.StringIO())
    market_date = market_date_latest()
    assert market_date is not None
    say(f"setup: book {book}, {accounts:,} accounts, market date {market_date}")
    book_ensure(book, accounts, market_date)
    previous_run_forget(market_date)
    lots = Lot.objects.filter(account__book=book).count()
    say(f"setup (not counted): {time.perf_counter() - setup_started:.1f} s; {lots:,} lots in the book; {load()}")

    first_event = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    stages = Stages()
    profiler = cProfile.Profile() if args.profile else None
    load_before = os.getloadavg()
    with stages.installed():
        started_backend = backend_cpu()
        started, started_cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        run = pipeline_module.pipeline_run(
            market_date=market_date, book=book, dispatch="inline", progress=stages.progress
        )
        if profiler:
            profiler.disable()
        seconds = time.perf_counter() - started
        cpu = time.process_time() - started_cpu
        backend, ended_backend = backend_cpu()
        server_cpu = ended_backend - started_backend[1] if backend == started_backend[0] else float("nan")
    load_after = os.getloadavg()
    if profiler:
        profiler.dump_stats(args.profile)
        say(f"profile written to {args.profile}")

    chunks = list(PipelineChunk.objects.filter(run=run).order_by("index"))
    inside: Counter[str] = Counter()
    for chunk in chunks:
        inside.update({k: float(v) for k, v in chunk.timings.items() if isinstance(v, int | float)})
    where = rows_written(run, first_event)
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        for table, condition in where.items():
            cursor.execute(f"SELECT count(*) FROM {table} WHERE {condition}")  # noqa: S608
            counts[table] = cursor.fetchone()[0]
    rows = sum(counts.values())
    chunk_wall = sum(stages.chunk_walls)
    say(
        f"pipeline {book} {market_date}: {run.status}, {accounts:,} accounts in {seconds:.1f} s "
        f"({cpu:.1f} s of CPU in this process, {server_cpu:.1f} s in its Postgres backend), "
        f"{accounts / seconds:,.0f} accounts/s; "
        f"load average {' '.join(f'{x:.1f}' for x in load_before)} before, "
        f"{' '.join(f'{x:.1f}' for x in load_after)} after; peak memory {peak_gib():.2f} GiB (max RSS, setup included)"
    )
    say(
        f"  prepare {stages.prepare:.1f} s ("
        + ", ".join(
            f"{k.removesuffix('_seconds')} {v:.1f} s" for k, v in run.timings.items() if not k.startswith("chunks_")
        )
        + ")"
    )
    say(
        f"  chunks {chunk_wall - stages.finish:.1f} s wall for {len(chunks)} chunks "
        f"(inside their transactions {inside.get('total_seconds', 0.0):.1f} s: "
        + ", ".join(f"{k.removesuffix('_seconds')} {v:.1f} s" for k, v in inside.items() if k != "total_seconds")
        + f"; claim, commit and latch {chunk_wall - stages.finish - inside.get('total_seconds', 0.0):.1f} s)"
    )
    say(f"  finish {stages.finish:.1f} s")
    say("  run counts: " + ", ".join(f"{k} {v:,}" for k, v in run.counts.items()))
    if run.error:
        say(f"  errors: {run.error[:500]}")
    names = {
        Recommendation._meta.db_table: "recommendations",
        Trade._meta.db_table: "trades",
        Finding._meta.db_table: "findings",
        AuditEvent._meta.db_table: "audit events",
    }
    write_seconds = inside.get("write_seconds", 0.0)
    say(
        f"rows written: {rows:,} ("
        + ", ".join(f"{names[t]} {c:,}" for t, c in counts.items())
        + f"): {rows / seconds:,.0f} rows/s end to end; the write stage {write_seconds:.1f} s, "
        f"{rows / max(write_seconds, 1e-9):,.0f} rows/s"
    )
    copied, copy_runs = copy_ceiling(where)
    copy_seconds = min(copy_runs)
    copy_rate = copied / copy_seconds
    say(
        f"COPY ceiling: the same {copied:,} rows into copies of their tables in {copy_seconds:.2f} s "
        f"(runs: {', '.join(f'{x:.2f} s' for x in copy_runs)}), "
        f"{copy_rate:,.0f} rows/s; the write stage takes {write_seconds / copy_seconds:.1f}x as long, the whole "
        f"run {seconds / copy_seconds:.1f}x; {load()}"
    )
    scale = ACCOUNTS / accounts
    headline = stages.prepare + (seconds - stages.prepare) * scale
    note = "" if accounts == ACCOUNTS else f" (measured on {accounts:,} accounts: prepare + the rest scaled linearly)"
    print(f"BENCH pipeline_100k_seconds {headline:.1f} s target <{TARGET_SECONDS}{note}")
    print(f"BENCH pipeline_rows_per_second {rows / seconds:.0f} rows/s")
    print(f"BENCH pipeline_write_vs_copy {write_seconds / copy_seconds:.1f} x (write stage / COPY of the same rows)")


if __name__ == "__main__":
    main()
