"""The hash chain of the audit log, as pure functions (no Django)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """One byte-exact text per value: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    body = canonical_json({"prev_hash": prev_hash, **fields})
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    event_id: int
    reason: str


def first_break(events: Iterable[tuple[int, str, str, Mapping[str, Any]]]) -> ChainBreak | None:
    """Walk ``(id, prev_hash, hash, fields)`` in order; return the first event that does not fit."""
    expected_prev = GENESIS_HASH
    for event_id, prev_hash, stored_hash, fields in events:
        if prev_hash != expected_prev:
            return ChainBreak(
                event_id, "prev_hash does not match the previous event (an event was removed or reordered)"
            )
        if event_hash(prev_hash, fields) != stored_hash:
            return ChainBreak(event_id, "hash does not match the event's content (the event was altered)")
        expected_prev = stored_hash
    return None
