"""Benchmarks of the sync engine and the reconciliation, with baselines measured in the same run.

Speed and memory targets live here, not in timed tests: each benchmark prints its measures beside the issue's
targets (PASS / MISS) as ratios against baselines it measures itself, and the load average of the machine.
``loyalty-connector bench sync|reconcile`` (:mod:`connector.commands.bench`) and ``benchmarks/*.py`` call:

* :func:`~connector.bench.sync_bench.run_sync_bench` — issue 5 item 8;
* :func:`~connector.bench.reconcile_bench.run_reconcile_bench` and
  :func:`~connector.bench.reconcile_e2e.run_end_to_end_bench` — issue 6 item 7.

The sandbox they talk to runs in a child process (:mod:`connector.bench.sandbox_proc`) that counts requests.
"""

__all__: list[str] = []
