"""Bulk inserts for the large writes (the nightly pipeline's rows, a benchmark's synthetic book).

``bulk_insert`` writes plain tuples of field values: on Postgres through ``COPY ... FROM STDIN`` (one stream per
call: no model instances, no SQL to build, no parameters to quote), elsewhere through ``executemany``. Rows that
other rows point to get their ids first from ``reserve_ids`` (the table's own sequence), so the caller knows them
without ``RETURNING``.

What ``bulk_create`` would do is done here too, once per call rather than per row: the fields not given get their
default (``auto_now`` and ``auto_now_add`` fields the current time), and JSON fields are encoded with the field's
encoder. Values are otherwise stored as given (Decimals already at the column's places). No signals are sent.
Use it inside the transaction of the change, as any other write.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connection, models
from django.utils import timezone


def reserve_ids(model: type[models.Model], count: int) -> list[int]:
    """``count`` new primary keys from the table's sequence, in increasing order (one query)."""
    if count <= 0:
        return []
    table = model._meta.db_table
    pk = model._meta.pk
    assert pk is not None  # noqa: S101 - every concrete model has a primary key
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, pk.column, count],
            )
            return sorted(row[0] for row in cursor.fetchall())
        # Elsewhere (SQLite: one writer at a time, and the caller is in its transaction) the ids after the
        # largest stored one are free.
        cursor.execute(f'SELECT COALESCE(MAX("{pk.column}"), 0) FROM "{table}"')  # noqa: S608 - names from the model
        last = int(cursor.fetchone()[0])
        return list(range(last + 1, last + 1 + count))


def _json_encoder(field: models.JSONField) -> Callable[[Any], str | None]:
    encoder = field.encoder

    def encode(value: Any) -> str | None:
        return None if value is None else json.dumps(value, cls=encoder)

    return encode


def bulk_insert(model: type[models.Model], fields: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Insert ``rows`` (tuples of values in the order of ``fields``) into ``model``'s table; returns how many.

    ``fields`` name model fields (``account`` or ``account_id``); the primary key may be one of them (ids from
    ``reserve_ids``), else the database assigns it."""
    meta = model._meta
    given: list[models.Field[Any, Any]] = []
    for name in fields:
        field = meta.get_field(name)
        if not isinstance(field, models.Field) or not field.concrete:
            raise ValueError(f"{model.__name__}.{name} is not a column")
        given.append(field)
    given_columns = {field.column for field in given}
    now = timezone.now()
    missing: list[tuple[str, Any]] = []
    for field in meta.concrete_fields:
        if field.column in given_columns or field.primary_key:
            continue
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            value = now
        else:
            value = field.get_default()
        missing.append((field.column, field.get_db_prep_save(value, connection)))
    names = [field.column for field in given] + [name for name, _ in missing]
    constants = tuple(value for _, value in missing)
    json_at = [(i, _json_encoder(field)) for i, field in enumerate(given) if isinstance(field, models.JSONField)]

    def prepared(row: Sequence[Any]) -> tuple[Any, ...]:
        if json_at:
            row = list(row)
            for i, encode in json_at:
                row[i] = encode(row[i])
        return (*row, *constants)

    table = meta.db_table
    column_list = ", ".join(f'"{name}"' for name in names)
    count = 0
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        raw = connection.connection
        assert raw is not None  # noqa: S101
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table}" ({column_list}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(prepared(row))
                count += 1
        return count
    batch = [prepared(row) for row in rows]
    if batch:
        placeholders = ", ".join(["%s"] * len(names))
        with connection.cursor() as cursor:
            cursor.executemany(f'INSERT INTO "{table}" ({column_list}) VALUES ({placeholders})', batch)  # noqa: S608
    return len(batch)
