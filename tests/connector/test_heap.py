"""frozen_heap: the objects alive when a run starts stay out of the collector until the last run ends."""

from __future__ import annotations

import gc
import threading

from connector.heap import frozen_heap


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
