"""Versioned SQL migrations (projections/migrations/NNNN_name.sql), applied in order at start."""

from __future__ import annotations

from pathlib import Path

import psycopg

FOLDER = Path(__file__).with_name("migrations")
LOCK = 7_421_001  # advisory lock: two processes starting at once apply each migration once


def pending(applied: set[str]) -> list[Path]:
    return [p for p in sorted(FOLDER.glob("[0-9][0-9][0-9][0-9]_*.sql")) if p.stem not in applied]


async def apply(conn: psycopg.AsyncConnection) -> list[str]:
    done: list[str] = []
    async with conn.transaction():
        await conn.execute("select pg_advisory_xact_lock(%s)", (LOCK,))
        await conn.execute(
            "create table if not exists schema_migrations"
            " (version text primary key, applied_at timestamptz not null default now())"
        )
        cur = await conn.execute("select version from schema_migrations")
        applied = {row[0] for row in await cur.fetchall()}
        for path in pending(applied):
            await conn.execute(path.read_text())
            await conn.execute("insert into schema_migrations (version) values (%s)", (path.stem,))
            done.append(path.stem)
    return done
