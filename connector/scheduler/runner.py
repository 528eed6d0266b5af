"""The running scheduler: APScheduler 3 with its jobs in the state database, each run guarded by a lease.

APScheduler keeps the configured jobs and their next run times in ``apscheduler_jobs`` of the state database,
so a restart keeps the schedule (a nightly run missed while the host was down runs within its misfire grace,
once — coalesced). APScheduler 3 does not coordinate several schedulers on one job store: two ``schedule run``
processes may both find a job due. That is what the lease is for — a run first takes lease ``schedule:<job>``
and a process that cannot take it skips that run, so a job never runs twice at once, on one host or several.

Jobs are stored by reference (:func:`run_scheduled_job` with the job's name), never with process state, so
any process can run a job another stored; the function finds this process's :class:`ScheduleRunner`, of
which there is one per process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text

from connector.config import ConnectorConfig, ScheduleJob
from connector.errors import ConfigError
from connector.logs import get_logger
from connector.scheduler.jobs import JOBS, JobContext, resolve_job
from connector.scheduler.leases import Leases
from connector.scheduler.triggers import build_trigger, describe, misfire_grace
from connector.store import Store

__all__ = [
    "JOB_TABLE",
    "LEASE_PREFIX",
    "JobOutcome",
    "ScheduleRunner",
    "lease_name",
    "run_scheduled_job",
]

JOB_TABLE = "apscheduler_jobs"
"""APScheduler's own table; the ``apscheduler_`` prefix keeps it out of the migrations' schema comparison."""
LEASE_PREFIX = "schedule:"
_JOB_FUNCTION = "connector.scheduler.runner:run_scheduled_job"
# Any constant unique to this application: serialises creating APScheduler's table on PostgreSQL.
_JOB_TABLE_LOCK_KEY = 0x4C43_0002

JobOutcome = Literal["done", "failed", "stopped", "busy", "unknown"]

_log = get_logger(__name__)
_active: ScheduleRunner | None = None
_active_lock = threading.Lock()


def lease_name(job: str) -> str:
    """The lease a run of ``job`` holds (``schedule:<job>``)."""
    return f"{LEASE_PREFIX}{job}"


def run_scheduled_job(job: str) -> JobOutcome:
    """What APScheduler calls: run ``job`` through this process's :class:`ScheduleRunner`."""
    runner = _active
    if runner is None:
        _log.warning("scheduled job fired with no scheduler running", job=job)
        return "unknown"
    return runner.run_job(job)


def _job_label(name: str, spec: ScheduleJob, zone: str) -> str:
    # Stored with the job: a stored job whose label differs was configured differently and is replaced.
    return f"{name}: {describe(spec)} ({zone}) run {','.join(spec.run)}"


class ScheduleRunner:
    """Runs the ``schedule:`` jobs of ``config`` until stopped.

    Args:
        config: the loaded ``connector.yaml``; its ``timezone`` is the schedule's zone.
        store: the open state database (job store and leases).
        registry: command name -> ``"module:function"``; default :data:`~connector.scheduler.jobs.JOBS`.
        lease_ttl: seconds a job's lease outlives its last heartbeat (how long a crashed holder blocks it).
        heartbeat: seconds between lease renewals; well under ``lease_ttl``.

    Example:
        >>> runner = ScheduleRunner(config, store)            # doctest: +SKIP
        >>> runner.start()                                     # doctest: +SKIP
        >>> stop.wait(); runner.shutdown()    # on SIGTERM: running jobs finish their current item
    """

    def __init__(
        self,
        config: ConnectorConfig,
        store: Store,
        *,
        registry: Mapping[str, str] | None = None,
        lease_ttl: float = 30.0,
        heartbeat: float = 5.0,
    ) -> None:
        if heartbeat >= lease_ttl:
            raise ConfigError("the lease heartbeat must be shorter than its TTL", heartbeat=heartbeat)
        self.config = config
        self.store = store
        self.registry = dict(JOBS if registry is None else registry)
        self.leases = Leases(store, ttl=lease_ttl)
        self.heartbeat = heartbeat
        self.zone = ZoneInfo(config.timezone)
        self.scheduler: BackgroundScheduler | None = None
        self._stopping = threading.Event()
        self._runs: set[threading.Event] = set()
        self._runs_lock = threading.Lock()
        self._check_commands()

    def _check_commands(self) -> None:
        for name, spec in self.config.schedule.items():
            for command in spec.run:
                if command not in self.registry:
                    raise ConfigError(f"schedule.{name}.run names {command!r}, which is not a scheduled job")

    def start(self) -> None:
        """Create the job table if needed, store the configured jobs and start firing them.

        Raises:
            ConfigError: another runner is active in this process.
        """
        global _active
        with _active_lock:
            if _active is not None:
                raise ConfigError("a scheduler is already running in this process")
            _active = self
        jobstore = SQLAlchemyJobStore(engine=self.store.engine, tablename=JOB_TABLE)
        _create_job_table(self.store, jobstore)
        self.scheduler = BackgroundScheduler(
            jobstores={"default": jobstore},
            executors={"default": ThreadPoolExecutor(max(1, len(self.config.schedule)))},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=self.zone,
        )
        # Paused first: the stored jobs are reconciled with the config before anything fires.
        self.scheduler.start(paused=True)
        self._install(self.scheduler)
        self.scheduler.resume()
        _log.info("scheduler started", jobs=sorted(self.config.schedule), holder=self.leases.holder)

    def _install(self, scheduler: BackgroundScheduler) -> None:
        for job in scheduler.get_jobs():
            if job.id not in self.config.schedule:
                with suppress(JobLookupError):  # another process starting now removed it first
                    scheduler.remove_job(job.id)
        for name, spec in self.config.schedule.items():
            label = _job_label(name, spec, self.config.timezone)
            settings = {"misfire_grace_time": misfire_grace(spec), "coalesce": True, "max_instances": 1}
            stored: Job | None = scheduler.get_job(name)
            if stored is not None and stored.name == label:
                # Same trigger: keep the stored next run time, so a run missed while stopped is caught up.
                scheduler.modify_job(name, **settings)
                continue
            scheduler.add_job(
                _JOB_FUNCTION,
                build_trigger(spec, self.zone),
                id=name,
                name=label,
                args=(name,),
                replace_existing=True,
                **settings,
            )

    def request_stop(self) -> None:
        """Ask running jobs to stop after their current item and start no new run (safe from a signal)."""
        self._stopping.set()
        with self._runs_lock:
            for stop in self._runs:
                stop.set()

    def shutdown(self) -> None:
        """Stop firing, wait for running jobs to finish their current item (leases released), detach."""
        global _active
        self.request_stop()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        with _active_lock:
            if _active is self:
                _active = None
        _log.info("scheduler stopped", holder=self.leases.holder)

    def run_job(self, name: str) -> JobOutcome:
        """Run job ``name`` now if its lease is free: its commands in order, stopping early when asked.

        Returns:
            ``done``; ``failed`` (a command raised, logged); ``stopped`` (asked to stop, or the lease was
            lost); ``busy`` (another process holds the lease); ``unknown`` (not in the config).
        """
        spec = self.config.schedule.get(name)
        if spec is None:
            _log.warning("scheduled job is not in the config", job=name)
            return "unknown"
        if self._stopping.is_set():
            return "stopped"
        stop = threading.Event()
        with self.leases.hold(lease_name(name), heartbeat=self.heartbeat, lost=stop) as held:
            if held is None:
                info = self.leases.get(lease_name(name))
                _log.info("job is running elsewhere", job=name, holder=info.holder if info else None)
                return "busy"
            self._track(stop)
            try:
                return self._run_commands(name, spec, stop)
            finally:
                with self._runs_lock:
                    self._runs.discard(stop)

    def _track(self, stop: threading.Event) -> None:
        with self._runs_lock:
            self._runs.add(stop)
            if self._stopping.is_set():
                stop.set()

    def _run_commands(self, name: str, spec: ScheduleJob, stop: threading.Event) -> JobOutcome:
        for command in spec.run:
            if stop.is_set():
                return "stopped"
            context = JobContext(
                config=self.config, store=self.store, job=name, stop=stop, started_at=datetime.now(UTC)
            )
            _log.info("job command started", job=name, command=command)
            try:
                resolve_job(command, self.registry)(context)
            except Exception as exc:
                # One failed run must not stop the scheduler: the next run tries again. The traceback only
                # at debug level: connector errors carry their evidence in the message.
                _log.error(
                    "job command failed", job=name, command=command, error=f"{type(exc).__name__}: {exc}"
                )
                _log.debug("job command traceback", job=name, command=command, exc_info=True)
                return "failed"
            _log.info("job command finished", job=name, command=command, stopped=stop.is_set())
        return "stopped" if stop.is_set() else "done"


def _create_job_table(store: Store, jobstore: SQLAlchemyJobStore) -> None:
    # Two processes starting on a fresh database would both find the table missing and both create it.
    with store.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _JOB_TABLE_LOCK_KEY})
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        jobstore.jobs_t.create(connection, checkfirst=True)
        connection.commit()
