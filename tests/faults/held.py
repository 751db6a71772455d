"""Holding a worker at an exact point of a rollout, from the outside: a PostgreSQL trigger (installed in the test
database for the block only) makes the UPDATE that records a step as finished wait for an advisory lock the test
holds. The worker has done the step's work and waits inside that statement; the test then kills it (and its
database session), which leaves exactly what a crash between the work and its record leaves."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import psycopg

from apps.deployments.choices import StepName
from tests.workers import database_url

HOLD_KEY = 1717  # the advisory lock's key (classid 0, objid 1717 in pg_locks)


@contextlib.contextmanager
def step_finish_held(step: str) -> Iterator[tuple[psycopg.Connection, Callable[[], int | None]]]:
    """While the block runs, recording ``step`` as succeeded or skipped waits. Yields the holding connection and a
    function giving the pid of the database session waiting there (None while nobody waits)."""
    assert step in StepName.values  # the trigger's argument is a literal
    with psycopg.connect(database_url(), autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", [HOLD_KEY])
        holder.execute(
            f"""
            create or replace function faults_hold_step() returns trigger language plpgsql as $$
            begin
              if new.name = tg_argv[0] and old.status = 'running' and new.status in ('succeeded', 'skipped') then
                perform pg_advisory_xact_lock_shared({HOLD_KEY});
              end if;
              return new;
            end $$;
            create trigger faults_hold_step before update on deployments_revisionstep
              for each row execute function faults_hold_step('{step}');
            """
        )

        def waiting() -> int | None:
            row = holder.execute(
                "select pid from pg_locks where locktype = 'advisory' and classid = 0 and objid = %s and not granted",
                [HOLD_KEY],
            ).fetchone()
            return row[0] if row else None

        try:
            yield holder, waiting
        finally:
            holder.execute("drop trigger if exists faults_hold_step on deployments_revisionstep")
            holder.execute("drop function if exists faults_hold_step()")
            holder.execute("select pg_advisory_unlock(%s)", [HOLD_KEY])
