"""The scheduler: ``schedule:`` of ``connector.yaml`` run by APScheduler 3, one run of a job at a time.

Layout::

    triggers.py   every: / cron: -> APScheduler triggers in the schedule's zone, misfire grace per job
    jobs.py       the registry of commands (sync, reconcile) -> job functions, and their JobContext
    leases.py     named leases in the state database (host:pid:uuid holder, heartbeat, TTL)
    runner.py     ScheduleRunner: job store in the state database, each run under lease ``schedule:<job>``
    status.py     what ``schedule list`` shows

Example:
    >>> runner = ScheduleRunner(config, open_store(config.state))   # doctest: +SKIP
    >>> runner.start()
    >>> stop.wait()                   # until SIGTERM / Ctrl-C sets it
    >>> runner.shutdown()             # running jobs finish their current item, leases are released
"""

from connector.scheduler.jobs import JOBS, JobContext, JobFunction, resolve_job, yesterday_in
from connector.scheduler.leases import HeldLease, LeaseInfo, Leases, holder_id
from connector.scheduler.runner import JOB_TABLE, JobOutcome, ScheduleRunner, lease_name, run_scheduled_job
from connector.scheduler.status import JobStatus, job_statuses
from connector.scheduler.triggers import build_trigger, describe, misfire_grace

__all__ = [
    "JOBS",
    "JOB_TABLE",
    "HeldLease",
    "JobContext",
    "JobFunction",
    "JobOutcome",
    "JobStatus",
    "LeaseInfo",
    "Leases",
    "ScheduleRunner",
    "build_trigger",
    "describe",
    "holder_id",
    "job_statuses",
    "lease_name",
    "misfire_grace",
    "resolve_job",
    "run_scheduled_job",
    "yesterday_in",
]
