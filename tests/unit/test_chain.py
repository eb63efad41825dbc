"""The audit hash chain as pure functions: any edit, removal or reordering is found."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from compliance.chain import GENESIS_HASH, event_hash, first_break

payloads = st.lists(
    st.dictionaries(st.text(min_size=1, max_size=5), st.one_of(st.integers(), st.text(max_size=10)), max_size=3),
    min_size=1,
    max_size=8,
)


def build(payload_list):  # type: ignore[no-untyped-def]
    events, prev = [], GENESIS_HASH
    for i, payload in enumerate(payload_list, start=1):
        fields = {"action": "test", "payload": payload}
        digest = event_hash(prev, fields)
        events.append((i, prev, digest, fields))
        prev = digest
    return events


@given(payloads)
def test_an_untouched_chain_verifies(payload_list) -> None:  # type: ignore[no-untyped-def]
    assert first_break(build(payload_list)) is None


@given(payloads, st.data())
def test_an_altered_event_is_the_first_break(payload_list, data) -> None:  # type: ignore[no-untyped-def]
    events = build(payload_list)
    index = data.draw(st.integers(min_value=0, max_value=len(events) - 1))
    event_id, prev, digest, fields = events[index]
    events[index] = (event_id, prev, digest, {**fields, "action": "tampered"})
    broken = first_break(events)
    assert broken is not None and broken.event_id == event_id and "altered" in broken.reason


@given(payloads.filter(lambda p: len(p) >= 2), st.data())
def test_a_removed_event_breaks_at_its_successor(payload_list, data) -> None:  # type: ignore[no-untyped-def]
    events = build(payload_list)
    index = data.draw(st.integers(min_value=0, max_value=len(events) - 2))
    successor = events[index + 1][0]
    del events[index]
    broken = first_break(events)
    assert broken is not None and broken.event_id == successor and "removed" in broken.reason


def test_hash_is_independent_of_key_order() -> None:
    assert event_hash(GENESIS_HASH, {"a": 1, "b": {"x": 1, "y": 2}}) == event_hash(
        GENESIS_HASH, {"b": {"y": 2, "x": 1}, "a": 1}
    )
