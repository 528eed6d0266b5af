"""frozen_heap: the objects alive when a run starts stay out of the collector, and young ones are collected less
often, until the last run ends."""

from __future__ import annotations

import gc
import threading
import weakref

from connector.heap import RUN_GEN0_THRESHOLD, frozen_heap


def test_the_heap_is_frozen_for_a_run_and_given_back_after() -> None:
    assert gc.get_freeze_count() == 0
    alive = [object() for _ in range(100)]
    with frozen_heap():
        assert gc.get_freeze_count() >= len(alive)
    assert gc.get_freeze_count() == 0


def test_nested_and_overlapping_runs_give_the_heap_back_when_the_last_ends() -> None:
    inner_started, outer_done = threading.Event(), threading.Event()
    seen: list[int] = []

    def other_run() -> None:
        with frozen_heap():
            inner_started.set()
            outer_done.wait(5)
            seen.append(gc.get_freeze_count())

    with frozen_heap():
        with frozen_heap():
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0  # the outer run still holds it
        thread = threading.Thread(target=other_run)
        thread.start()
        inner_started.wait(5)
    assert gc.get_freeze_count() > 0  # the other thread's run is still going
    outer_done.set()
    thread.join()
    assert len(seen) == 1
    assert seen[0] > 0
    assert gc.get_freeze_count() == 0


def test_young_objects_are_collected_less_often_during_a_run_and_as_before_after() -> None:
    before = gc.get_threshold()
    with frozen_heap():
        assert gc.get_threshold() == (RUN_GEN0_THRESHOLD, *before[1:])
        with frozen_heap():
            assert gc.get_threshold()[0] == RUN_GEN0_THRESHOLD
        assert gc.get_threshold()[0] == RUN_GEN0_THRESHOLD  # the outer run still goes
    assert gc.get_threshold() == before


def test_a_cycle_made_during_a_run_is_still_collected() -> None:
    class Node:
        pass

    with frozen_heap():
        node = Node()
        node.self = node  # type: ignore[attr-defined]
        gone = weakref.ref(node)
        del node
        assert gone() is not None  # nothing collected it yet: the young generation is not full
        kept = [[] for _ in range(RUN_GEN0_THRESHOLD * 2)]  # the young generation fills: it is collected
        assert gone() is None
        assert len(kept) == RUN_GEN0_THRESHOLD * 2
