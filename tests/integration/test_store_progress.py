"""Progress reports in an input's event log, on SQLite and PostgreSQL alike: items and reports keep
their seq ranges, each can be read on its own, and the newest report is found directly (the
``store`` fixture and ``@store_test`` come from ``test_store``)."""

from __future__ import annotations

from surge.core.progress import PROGRESS_SEQ_BASE, PROGRESS_SEQ_END, progress_seq
from surge.store import Store
from surge.store.base import InputEvent
from tests.integration import test_store

store = test_store.store            # the SQLite + PostgreSQL fixture, used by name
store_test = test_store.store_test


@store_test
async def test_items_and_reports_are_read_apart(store: Store) -> None:
    _, (i, other) = await test_store.queued_inputs(store, 2)
    reports = [InputEvent(i.id, progress_seq(1, n), "progress", f"r{n}".encode(), 10.0 + n) for n in range(3)]
    items = [InputEvent(i.id, n, "item", f"v{n}".encode(), 10.5 + n) for n in range(4)]
    await store.append_events([reports[0], items[0], items[1], reports[1], items[2], reports[2], items[3]])
    await store.append_events([InputEvent(i.id, progress_seq(1, 1), "progress", b"dup", 99.0)])   # ignored
    got = await store.events_between(i.id, -1, PROGRESS_SEQ_BASE)
    assert [(e.seq, e.kind, e.data) for e in got] == [(n, "item", f"v{n}".encode()) for n in range(4)]
    assert [e.seq for e in await store.events_between(i.id, 1, PROGRESS_SEQ_BASE)] == [2, 3]
    assert [e.seq for e in await store.events_between(i.id, -1, PROGRESS_SEQ_BASE, limit=2)] == [0, 1]
    got = await store.events_between(i.id, PROGRESS_SEQ_BASE - 1, PROGRESS_SEQ_END)
    assert [e.data for e in got] == [b"r0", b"r1", b"r2"] and got[1].at == 11.0
    assert [e.data for e in await store.events_between(i.id, progress_seq(1, 0), PROGRESS_SEQ_END)] == [b"r1", b"r2"]
    assert await store.events_between(other.id, -1, PROGRESS_SEQ_END) == []


@store_test
async def test_last_event_is_the_newest_report_of_the_latest_attempt(store: Store) -> None:
    _, (i, other) = await test_store.queued_inputs(store, 2)
    assert await store.last_event(i.id, min_seq=PROGRESS_SEQ_BASE) is None
    await store.append_events([InputEvent(i.id, 0, "item", b"v0", 1.0)])
    assert await store.last_event(i.id, min_seq=PROGRESS_SEQ_BASE) is None        # items are not reports
    await store.append_events([InputEvent(i.id, progress_seq(1, n), "progress", f"a1-{n}".encode(), 2.0 + n)
                               for n in range(5)])
    last = await store.last_event(i.id, min_seq=PROGRESS_SEQ_BASE)
    assert last == InputEvent(i.id, progress_seq(1, 4), "progress", b"a1-4", 6.0)
    # a retry reports from 0 again, and its reports are newer than any of the first attempt's
    await store.append_events([InputEvent(i.id, progress_seq(2, 0), "progress", b"a2-0", 9.0)])
    last = await store.last_event(i.id, min_seq=PROGRESS_SEQ_BASE)
    assert last is not None and last.data == b"a2-0"
    assert await store.last_event(other.id, min_seq=PROGRESS_SEQ_BASE) is None
    # the highest seq PostgreSQL's INTEGER column holds is a valid report seq
    await store.append_events([InputEvent(other.id, PROGRESS_SEQ_END - 1, "progress", b"max", 3.0)])
    last = await store.last_event(other.id, min_seq=PROGRESS_SEQ_BASE)
    assert last is not None and last.seq == 2**31 - 1
