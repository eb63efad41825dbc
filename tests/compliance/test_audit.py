"""The audit log: every write chained, verified by a command, append-only in Postgres, no forks under concurrency."""

from __future__ import annotations

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from compliance.audit import AuditOutsideTransactionError, audit_record, audit_verify
from compliance.chain import GENESIS_HASH
from compliance.models import AuditEvent
from tests.conftest import on_postgres

pytestmark = pytest.mark.django_db


def record(n: int, actor=None) -> list[AuditEvent]:  # type: ignore[no-untyped-def]
    events = []
    for i in range(n):
        with transaction.atomic():
            events.append(
                audit_record(actor=actor, action="test.event", object_type="test", object_id=i, payload={"i": i})
            )
    return events


def test_events_chain_from_genesis_and_verify(alice) -> None:  # type: ignore[no-untyped-def]
    start = AuditEvent.objects.count()
    events = record(3, actor=alice)
    assert events[0].prev_hash == (
        AuditEvent.objects.filter(id__lt=events[0].id).last().hash if start else GENESIS_HASH
    )
    assert events[1].prev_hash == events[0].hash and events[2].prev_hash == events[1].hash
    assert events[0].actor_label == "alice@example.com"
    assert audit_verify() == (start + 3, None)


@pytest.mark.django_db(transaction=True)
def test_audit_must_share_the_transaction_of_the_change() -> None:
    with pytest.raises(AuditOutsideTransactionError):
        audit_record(actor=None, action="test.event", object_type="test", object_id=1)


def test_verify_command_reports_intact_chain(capsys) -> None:  # type: ignore[no-untyped-def]
    record(2)
    call_command("verify_audit")
    assert "Audit chain intact" in capsys.readouterr().out


def _tamper(sql: str, params: list[object]) -> None:
    """What a DBA with superuser rights could do: switch the guard off, edit, switch it back on."""
    with connection.cursor() as cursor:
        if on_postgres():
            # Deferred foreign-key checks of this test's inserts would block ALTER TABLE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("ALTER TABLE compliance_auditevent DISABLE TRIGGER USER")
        cursor.execute(sql, params)
        if on_postgres():
            cursor.execute("ALTER TABLE compliance_auditevent ENABLE TRIGGER USER")


def test_verify_names_the_first_altered_event() -> None:
    events = record(4)
    _tamper("UPDATE compliance_auditevent SET payload = %s WHERE id = %s", ['{"i": 99}', events[2].pk])
    with pytest.raises(CommandError, match=rf"broken at event #{events[2].pk}: .*altered"):
        call_command("verify_audit")


def test_verify_names_the_event_after_a_deleted_one() -> None:
    events = record(4)
    _tamper("DELETE FROM compliance_auditevent WHERE id = %s", [events[1].pk])
    _count, broken = audit_verify()
    assert broken is not None and broken.event_id == events[2].pk and "removed" in broken.reason


def test_postgres_rejects_update_and_delete_of_audit_events() -> None:
    if not on_postgres():
        pytest.skip("the append-only trigger is a Postgres feature; SQLite is the demo database")
    event = record(1)[0]
    with pytest.raises(DatabaseError, match="append-only: UPDATE"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="edited")
    with pytest.raises(DatabaseError, match="append-only: DELETE"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with (
        pytest.raises(DatabaseError, match="append-only: TRUNCATE"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET LOCAL advisor.allow_audit_truncate = 'off'")
        cursor.execute("TRUNCATE compliance_auditevent CASCADE")
    assert AuditEvent.objects.get(pk=event.pk).action == "test.event"


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_never_fork_the_chain() -> None:
    if not on_postgres():
        pytest.skip("SQLite serializes writers by itself; the advisory lock is for Postgres")
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        try:
            for i in range(10):
                with transaction.atomic():
                    audit_record(actor=None, action="test.concurrent", object_type="w", object_id=f"{worker}-{i}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    events = list(AuditEvent.objects.filter(action="test.concurrent"))
    assert len(events) == 40
    assert len({e.prev_hash for e in AuditEvent.objects.all()}) == AuditEvent.objects.count()  # no two share a parent
    assert audit_verify()[1] is None
