"""Holding a worker or a request at an exact point, from the outside: a PostgreSQL trigger (installed in the test
database for the block only) makes one statement wait for an advisory lock the test holds. The process waits
inside that statement, in its transaction; the test then kills it or terminates its database session (or both),
which leaves exactly what a crash or a dropped connection at that point leaves.

- :func:`step_finish_held`: the UPDATE recording a rollout step as finished (its work done, not yet recorded);
- :func:`insert_held_once`: the first INSERT into a table (e.g. the audit event of a request's transaction)."""

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

        try:
            yield holder, _waiting(holder)
        finally:
            holder.execute("drop trigger if exists faults_hold_step on deployments_revisionstep")
            holder.execute("drop function if exists faults_hold_step()")
            holder.execute("select pg_advisory_unlock(%s)", [HOLD_KEY])


def _waiting(holder: psycopg.Connection) -> Callable[[], int | None]:
    def waiting() -> int | None:
        row = holder.execute(
            "select pid from pg_locks where locktype = 'advisory' and classid = 0 and objid = %s and not granted",
            [HOLD_KEY],
        ).fetchone()
        return row[0] if row else None

    return waiting


@contextlib.contextmanager
def insert_held_once(table: str) -> Iterator[tuple[psycopg.Connection, Callable[[], int | None]]]:
    """While the block runs, the first INSERT into ``table`` waits (later ones do not: a sequence, which no
    rollback undoes, counts them). Yields the holding connection and the waiting session's pid function."""
    assert table.replace("_", "").isalnum()
    with psycopg.connect(database_url(), autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(%s)", [HOLD_KEY])
        holder.execute(
            f"""
            create sequence if not exists faults_hold_once;
            create or replace function faults_hold_insert() returns trigger language plpgsql as $$
            begin
              if nextval('faults_hold_once') = 1 then
                perform pg_advisory_xact_lock_shared({HOLD_KEY});
              end if;
              return new;
            end $$;
            create trigger faults_hold_insert before insert on {table}
              for each row execute function faults_hold_insert();
            """
        )
        try:
            yield holder, _waiting(holder)
        finally:
            holder.execute(f"drop trigger if exists faults_hold_insert on {table}")
            holder.execute("drop function if exists faults_hold_insert()")
            holder.execute("drop sequence if exists faults_hold_once")
            holder.execute("select pg_advisory_unlock(%s)", [HOLD_KEY])


def terminate_other_sessions(holder: psycopg.Connection, *keep: int) -> int:
    """Terminate every session of the test database but the holder's and ``keep``: what a PostgreSQL restart (or
    an idle-connection reaper) does to the kept connections of the processes under test. Returns how many."""
    rows = holder.execute(
        "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() "
        "and pid <> pg_backend_pid() and not (pid = any(%s))",
        [list(keep)],
    ).fetchall()
    return len(rows)
