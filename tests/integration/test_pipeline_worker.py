"""A real Celery worker process killed with SIGKILL in the middle of a pipeline date, then of executions.

The worker runs as its own process group (``celery worker``, prefork pool, one child) against Redis and the test
database. It is stopped at a known point without sleeping or patching the code under test: this process holds a
row lock (``SELECT ... FOR UPDATE``) on a row the worker needs half-way through a transaction (an account its
chunk writes a recommendation for; an order it is about to fill), waits until Postgres reports the worker's
session blocked by that lock, and then kills the whole process group. The killed session's transaction is rolled
back when the lock is released, exactly as when a machine dies mid-write; its task stays unacknowledged in Redis
(``acks_late``) until the visibility timeout, so the date is completed by running it again (``run_pipeline
--date D --async``: the pending chunks are dispatched again) on a new worker, and the executions by the next
pipeline run's finish (it re-queues approvals older than ``REQUEUE_AFTER``).
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from compliance.audit import AUDIT_CHAIN_LOCK_KEY, audit_verify
from compliance.models import AuditEvent
from portfolios.models import (
    Account,
    CashMovement,
    ChunkStatus,
    Fill,
    Order,
    OrderStatus,
    PipelineChunk,
    PipelineRun,
    Recommendation,
    RecommendationStatus,
    RunStatus,
    Trade,
)
from portfolios.selectors import market_date_latest
from portfolios.services.pipeline import REQUEUE_AFTER
from tests.conftest import IN_CI, on_postgres, redis_available
from tests.factories import BALANCED_ANSWERS, InvestorFactory
from tests.integration.test_worker_loop import SENTINEL_DATE, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

INVESTORS = 30
CHUNK_SIZE = 6  # one account per investor: 5 chunks
LOCKED_CHUNK = 2  # chunks 0 and 1 succeed, 2 is killed half-way, 3 and 4 have not started
CELERY_WORKER = [sys.executable, "-m", "celery", "-A", "advisor", "worker"]
WORKER_OPTIONS = ["--pool=prefork", "--concurrency=1", "--loglevel=WARNING"]
WORKER_OPTIONS += ["--without-gossip", "--without-mingle", "--without-heartbeat"]


class Workers:
    """Real ``celery worker`` processes, each the leader of its own process group (the pool child included)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.sessions: list[Session] = []
        db = connection.settings_dict
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "advisor.settings",
            "DATABASE_URL": (  # the test database
                f"postgres://{quote(db['USER'], safe='')}:{quote(db['PASSWORD'] or '', safe='')}"
                f"@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{quote(db['NAME'], safe='')}"
            ),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "ADVISOR_ESTIMATION_YEARS": str(settings.ADVISOR["ESTIMATION_YEARS"]),
            "LOG_LEVEL": "WARNING",
        }

    def start(self) -> subprocess.Popen[bytes]:
        n = len(self.procs) + 1
        with open(self.log_dir / f"worker-{n}.log", "wb") as log:
            proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                [*CELERY_WORKER, f"--hostname=pipeline-kill-{n}@%h", *WORKER_OPTIONS],
                cwd=settings.BASE_DIR,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: killpg reaches the pool child too
                preexec_fn=_stop_with_parent,
            )
        self.procs.append(proc)
        return proc

    def session(self) -> Session:
        session = Session()
        self.sessions.append(session)
        return session

    @staticmethod
    def kill(proc: subprocess.Popen[bytes]) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for session in self.sessions:
            session.release()  # a failed test's locks would block the workers' shutdown and the table flush
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # warm shutdown: the running task, if any, finishes
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=30)


def _stop_with_parent() -> None:
    """A worker gets SIGTERM (a warm shutdown, pool child included) if this test process dies without its
    teardown: a worker left running would take the tasks of the next run."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _forget_broker_state() -> None:
    """An empty queue, and no task left unacknowledged by a killed worker (Redis would re-deliver it an hour
    later, to whatever test database then has a row with its id)."""
    import redis

    from advisor.celery import app

    app.control.purge()
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete("unacked", "unacked_index", "unacked_mutex")


@pytest.fixture
def workers(market_data, tmp_path) -> Iterator[Workers]:  # type: ignore[no-untyped-def]
    if not (on_postgres() and redis_available()):
        message = "integration tests need Postgres (DATABASE_URL) and Redis (CELERY_BROKER_URL)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    import portfolios.tasks  # noqa: F401 - registers the tasks with the app
    from advisor.celery import app

    app.conf.task_always_eager = False
    others = app.control.ping(timeout=1)
    if others:
        pytest.fail(f"other Celery workers consume from {settings.CELERY_BROKER_URL}: {others}")
    _forget_broker_state()
    pool = Workers(tmp_path)
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '60s'")  # a mistake in this test fails it rather than hanging
    try:
        yield pool
    finally:
        pool.stop_all()
        _forget_broker_state()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


class Session:
    """Another database session of this process, holding locks in an open transaction, and the sessions it blocks."""

    def __init__(self) -> None:
        db = connection.settings_dict
        self.conn = psycopg.connect(
            dbname=db["NAME"],
            user=db["USER"],
            password=db["PASSWORD"] or None,
            host=db["HOST"] or "127.0.0.1",
            port=db["PORT"] or 5432,
        )
        self.blocked: list[int] = []

    def lock_row(self, table: str, pk: int, strength: str = "UPDATE") -> Session:
        rows = self.conn.execute(f'SELECT id FROM "{table}" WHERE id = %s FOR {strength}', [pk]).fetchall()  # noqa: S608
        assert rows == [(pk,)], f"no row {pk} in {table} to lock"
        return self

    def lock_audit_chain(self) -> Session:
        self.conn.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_CHAIN_LOCK_KEY])
        return self

    def blocked_sessions(self) -> list[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))", [self.conn.info.backend_pid]
            )
            self.blocked = [pid for (pid,) in cursor.fetchall()]
        return self.blocked

    def blocked_query(self) -> str:
        with connection.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = ANY(%s)", [self.blocked])
            return " ".join(q for (q,) in cursor.fetchall())

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()

    def release_and_wait_for_rollback(self) -> None:
        """Release the locks; the killed worker's session then reads the end of its connection and rolls back."""
        self.release()

        def gone() -> bool:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [self.blocked])
                return cursor.fetchone()[0] == 0

        wait_for(gone, timeout=30, what="the killed worker's session to end")


def book_of_funded_investors(advisor, admin) -> list[Account]:  # type: ignore[no-untyped-def]
    from advisor.services import investor_assign_advisor
    from portfolios.services.accounts import account_deposit, account_open
    from profiling.services import profile_submit

    accounts = []
    for i in range(INVESTORS):
        # An unusable password, stored as is: hashing one costs 0.4 s (argon2) and nobody logs in here.
        investor = InvestorFactory(email=f"investor{i:02}@example.com", password="!")
        investor_assign_advisor(investor=investor, advisor=advisor, actor=admin)
        profile_submit(investor=investor, answers=BALANCED_ANSWERS)
        account = account_open(owner=investor)
        account_deposit(account=account, amount=Decimal(20000 + 1000 * i), actor=investor)
        accounts.append(account)
    return sorted(accounts, key=lambda a: (a.owner_id, a.pk))


def drain() -> None:
    """The worker takes one task at a time, in order: once a sentinel task queued last has run, all others have."""
    from portfolios.tasks import nightly_pipeline

    PipelineRun.objects.filter(market_date=SENTINEL_DATE).delete()
    nightly_pipeline.delay(SENTINEL_DATE)
    wait_for(
        lambda: PipelineRun.objects.filter(market_date=SENTINEL_DATE, status=RunStatus.FAILED).exists(),
        timeout=60,
        what="the sentinel task",
    )


def until(condition: Callable[[], object], what: str) -> object:
    try:
        return wait_for(condition, timeout=60, what=what)
    except AssertionError as exc:  # say where everything stood
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, state, wait_event_type, pg_blocking_pids(pid), left(query, 120) FROM pg_stat_activity"
                " WHERE datname = current_database()"
            )
            sessions = cursor.fetchall()
        chunks = list(PipelineChunk.objects.values_list("run_id", "index", "status", "attempts"))
        raise AssertionError(f"{exc}\nchunks: {chunks}\nsessions: {sessions}") from None


def test_worker_killed_mid_date_then_rerun_processes_every_account_once(workers, carol, erin, settings) -> None:  # type: ignore[no-untyped-def]
    from portfolios.services.pipeline import pipeline_run
    from portfolios.services.recommendations import recommendation_approve
    from portfolios.tasks import execute_recommendation

    settings.ADVISOR = {**settings.ADVISOR, "PIPELINE_CHUNK_SIZE": CHUNK_SIZE}
    accounts = book_of_funded_investors(carol, erin)
    market_date = market_date_latest()
    audit_before = AuditEvent.objects.count()

    # The date is prepared here and its chunks queued while no worker runs; the third chunk's row is locked, so
    # the worker does two chunks and waits to claim the third.
    run = pipeline_run(market_date=market_date, dispatch="celery")
    chunks = {c.index: c for c in run.chunks.all()}
    assert len(chunks) == INVESTORS // CHUNK_SIZE
    claim = workers.session().lock_row(PipelineChunk._meta.db_table, chunks[LOCKED_CHUNK].pk)
    first = workers.start()

    def two_chunks_done_and_the_third_waiting(session: Session) -> Callable[[], bool]:
        return lambda: (
            run.chunks.filter(status="succeeded").count() == LOCKED_CHUNK and bool(session.blocked_sessions())
        )

    until(two_chunks_done_and_the_third_waiting(claim), "two chunks done and the worker waiting for the third")
    # Now the audit chain is locked and the third chunk let go: it claims itself, reads, computes and writes until
    # its first audit event, where it waits in the middle of its transaction. Then the worker is killed.
    audit = workers.session().lock_audit_chain()
    claim.release()
    until(two_chunks_done_and_the_third_waiting(audit), "the third chunk half-way")
    assert "pg_advisory_xact_lock" in audit.blocked_query()
    Workers.kill(first)
    audit.release_and_wait_for_rollback()

    # The date is half done: the killed chunk left nothing behind, the run waits.
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.stage == "accounts"
    statuses = dict(run.chunks.values_list("index", "status"))
    assert statuses == {0: "succeeded", 1: "succeeded", 2: "pending", 3: "pending", 4: "pending"}
    assert Recommendation.objects.count() == LOCKED_CHUNK * CHUNK_SIZE
    assert PipelineChunk.objects.get(run=run, index=LOCKED_CHUNK).attempts == 0  # its claim was rolled back too

    # A new worker; the date is run again (run_pipeline --date D --async): the pending chunks are dispatched
    # again. Chunks 3 and 4 are now delivered twice (their first tasks were still queued): each runs once.
    second = workers.start()
    call_command("run_pipeline", "--date", market_date.isoformat(), "--async", stdout=io.StringIO())
    until(lambda: PipelineRun.objects.filter(pk=run.pk).exclude(status=RunStatus.RUNNING).exists(), "the run")
    drain()  # every duplicate delivery has been consumed

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    chunks_after = list(run.chunks.order_by("index"))
    assert [c.status for c in chunks_after] == [ChunkStatus.SUCCEEDED] * len(chunks)
    assert [c.attempts for c in chunks_after] == [1] * len(chunks)  # claimed once each, whatever the deliveries
    assert sum(c.account_count for c in chunks_after) == INVESTORS
    assert sum(c.counts["accounts_seen"] for c in chunks_after) == INVESTORS
    assert sum(c.counts["recommendations"] for c in chunks_after) == INVESTORS
    # No account in two chunks: the owner ranges are disjoint and cover every account once.
    owners = [a.owner_id for a in accounts]
    assert all(sum(c.first_owner_id <= o <= c.last_owner_id for c in chunks_after) == 1 for o in owners)
    assert run.counts["recommendations"] == INVESTORS and run.counts["failures"] == 0
    # One recommendation per account, each with its own trades, each written and audited once.
    recs = Recommendation.objects.filter(pipeline_run=run)
    assert sorted(recs.values_list("account_id", flat=True)) == sorted(a.pk for a in accounts)
    assert Recommendation.objects.count() == INVESTORS
    created = Counter(AuditEvent.objects.filter(action="recommendation.created").values_list("object_id", flat=True))
    assert sorted(created) == sorted(str(pk) for pk in recs.values_list("pk", flat=True))
    assert set(created.values()) == {1}
    assert AuditEvent.objects.filter(action="pipeline.finished").count() == 1
    assert not Order.objects.exists()
    assert not Trade.objects.exclude(recommendation__in=recs).exists()
    assert AuditEvent.objects.count() > audit_before
    checked, broken = audit_verify()
    assert broken is None and checked == AuditEvent.objects.count()

    # Executions on the same worker: the first approval's execution waits for its account (locked here) while the
    # three others are approved and queued behind it; the second order of the third is locked too. Once the
    # first lock goes, the worker executes two recommendations and the third's first order, then waits.
    approved = list(recs.annotate(n=Count("trades")).filter(n__gte=2).order_by("account__owner_id")[:4])
    # (FOR NO KEY UPDATE: the approvals' orders may still reference the account; the fill's FOR UPDATE waits.)
    plug = workers.session().lock_row(Account._meta.db_table, approved[0].account_id, "NO KEY UPDATE")
    for rec in approved:
        recommendation_approve(recommendation_id=rec.pk, advisor=carol)
    stuck = approved[2]
    stuck_orders = list(Order.objects.filter(recommendation=stuck).order_by("-side", "id").values_list("pk", flat=True))
    lock = workers.session().lock_row(Order._meta.db_table, stuck_orders[1])
    until(plug.blocked_sessions, "the first execution waiting for its account")
    plug.release()

    def two_executed_and_third_half_way() -> bool:
        executed = Recommendation.objects.filter(pk__in=[r.pk for r in approved[:2]], status="executed").count()
        return executed == 2 and bool(lock.blocked_sessions())

    until(two_executed_and_third_half_way, "two executions and the third one half-way")
    Workers.kill(second)
    lock.release_and_wait_for_rollback()
    assert Fill.objects.filter(order__recommendation=stuck).count() == 1  # its first order filled, then the kill
    assert Recommendation.objects.get(pk=stuck.pk).status == RecommendationStatus.APPROVED
    assert not Fill.objects.filter(order__recommendation=approved[3]).exists()

    # A new worker. Time passes (the approvals are made older than REQUEUE_AFTER), and the next pipeline run
    # (here the date scanned again: run_pipeline --date D --rerun --async) re-queues every execution still
    # approved when it finishes (the task the killed worker held stays unacknowledged in Redis). Each of the four
    # is also delivered once more, executed or not.
    workers.start()
    Recommendation.objects.filter(pk__in=[r.pk for r in approved]).update(
        decided_at=timezone.now() - REQUEUE_AFTER - timedelta(minutes=1)
    )
    call_command("run_pipeline", "--date", market_date.isoformat(), "--rerun", "--async", stdout=io.StringIO())
    until(lambda: PipelineRun.objects.filter(pk=run.pk, status=RunStatus.SUCCEEDED).exists(), "the re-scan")
    # Only the third: the fourth's task was still queued, and the new worker took it before the re-scan's chunks.
    assert PipelineRun.objects.get(pk=run.pk).counts["executions_requeued"] == 1
    assert Recommendation.objects.count() == INVESTORS  # the re-scan found every account already recommended
    for rec in approved:
        execute_recommendation.delay(rec.pk)
    drain()

    orders = Order.objects.filter(recommendation__in=approved)
    assert orders.count() == Trade.objects.filter(recommendation__in=approved).count()
    assert set(orders.values_list("status", flat=True)) == {OrderStatus.FILLED}
    assert Fill.objects.filter(order__in=orders).count() == orders.count()
    assert AuditEvent.objects.filter(action="order.filled").count() == orders.count()
    assert AuditEvent.objects.filter(action="recommendation.executed").count() == len(approved)
    assert all(
        r.status == RecommendationStatus.EXECUTED
        for r in Recommendation.objects.filter(pk__in=[r.pk for r in approved])
    )
    # Cash moved once per fill (its trade, and its cost, once each); nobody's cash went negative.
    fills = Fill.objects.filter(order__in=orders)
    movements = CashMovement.objects.filter(fill__in=fills)
    assert not movements.values("fill", "kind").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert movements.filter(kind__in=["buy", "sell"]).count() == fills.count()
    for rec in approved:
        balance = CashMovement.objects.filter(account_id=rec.account_id).aggregate(total=Sum("amount"))["total"]
        assert balance >= 0
    checked, broken = audit_verify()
    assert broken is None and checked == AuditEvent.objects.count()
