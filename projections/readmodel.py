"""A batch of events into the read model, in the caller's transaction: the events not yet applied
(by id) are recorded, the rows they touch loaded, the events folded over them in log order
(projections/rows.py), and each changed row written once: new rows copied in, changed ones updated
from a copy, a family's derivatives replaced when its winning outcome brings them.

Rows are copied in binary with the column types read from the catalog, which is several times
faster than text for the arrays and JSON the rows hold.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg import sql

from projections import rows
from streams import messages as m

# this session's tables for updating rows: shaped like the tables they update, emptied at each commit
STAGED = {"variations": "staged_variations", "families": "staged_families"}
COLUMNS = {
    "variations": rows.VARIATION_COLUMNS,
    "families": rows.FAMILY_COLUMNS,
    "derivatives": rows.DERIVATIVE_COLUMNS,
}
KEYS = {"variations": ("id",), "families": ("variation_id", "family")}


def _names(columns: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, columns))


def _update(table: str) -> sql.Composed:
    rest = tuple(c for c in COLUMNS[table] if c not in KEYS[table])
    return sql.SQL("update {table} t set ({rest}) = ({staged}) from {source} s where {match}").format(
        table=sql.Identifier(table),
        rest=_names(rest),
        staged=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(c)) for c in rest),
        source=sql.Identifier(STAGED[table]),
        match=sql.SQL(" and ").join(sql.SQL("t.{c} = s.{c}").format(c=sql.Identifier(k)) for k in KEYS[table]),
    )


def _load(table: str, key: str) -> sql.Composed:
    return sql.SQL("select {} from {} where {} = any(%b)").format(
        _names(COLUMNS[table]), sql.Identifier(table), sql.Identifier(key)
    )


LOAD_VARIATIONS, LOAD_FAMILIES = _load("variations", "id"), _load("families", "variation_id")
UPDATE = {table: _update(table) for table in STAGED}
INSERT_CHOICES = """insert into set_choices (set_name, choice, variant, variation_id, variation_name, round,
                                          reason, chosen_at, command_id)
                     values (%s, %s, %s, %s, %s, %s, %s, %s, %s) on conflict do nothing"""
INSERT_REJECTIONS = sql.SQL("insert into rejections ({}) values ({}) on conflict do nothing").format(
    _names(rows.REJECTION_COLUMNS), sql.SQL(", ").join(sql.Placeholder() * len(rows.REJECTION_COLUMNS))
)


class ReadModel:
    """The read model on one connection: `prepare` once, then `apply` batches."""

    def __init__(self) -> None:
        self._types: dict[str, list[int]] = {}

    async def prepare(self, conn: psycopg.AsyncConnection) -> None:
        """Make this session's staging tables and read the column types of the tables rows go to."""
        for table, staged in STAGED.items():
            await conn.execute(
                sql.SQL("create temporary table if not exists {} (like {}) on commit delete rows").format(
                    sql.Identifier(staged), sql.Identifier(table)
                )
            )
        for table, columns in COLUMNS.items():
            cur = await conn.execute(
                """select attname, atttypid::integer from pg_attribute
                   where attrelid = to_regclass(%s) and attnum > 0 and not attisdropped""",
                (table,),
            )
            types: dict[str, int] = dict(await cur.fetchall())  # column -> type oid
            if missing := [c for c in columns if c not in types]:
                raise RuntimeError(f"the read model's table {table} has no columns {missing}: migrations not applied?")
            self._types[table] = [types[c] for c in columns]

    async def _copy(
        self, cur: psycopg.AsyncCursor[Any], table: str, data: list[tuple[Any, ...]], into: str = ""
    ) -> None:
        if not data:
            return
        statement = sql.SQL("copy {} ({}) from stdin (format binary)").format(
            sql.Identifier(into or table), _names(COLUMNS[table])
        )
        async with cur.copy(statement) as copy:
            copy.set_types(self._types[table])
            for row in data:
                await copy.write_row(row)

    async def apply(self, conn: psycopg.AsyncConnection, events: list[m.Event]) -> int:
        """Apply `events` (in log order) in the current transaction; returns how many were new."""
        unique: dict[uuid.UUID, m.Event] = {}
        for event in events:
            unique.setdefault(event.event_id, event)
        if not unique:
            return 0
        async with conn.cursor() as cur:
            # 1. Record the events; those recorded before are dropped (a redelivery)
            await cur.execute(
                """insert into applied_events (event_id) select unnest(%b::uuid[])
                   on conflict do nothing returning event_id""",
                (list(unique),),
            )
            new = await cur.fetchall()
            if not new:
                return 0
            if len(new) == len(unique):
                todo = list(unique.values())
            else:
                recorded = {event_id for (event_id,) in new}
                todo = [event for event_id, event in unique.items() if event_id in recorded]
            # A set's choices are rows of their own; what the set learns of its variants, the
            # variations' own events have told already
            applied = len(todo)
            chosen = [e for e in todo if isinstance(e, m.VariantChosen)]
            if chosen:
                await cur.executemany(INSERT_CHOICES, [_choice(e) for e in chosen])
            todo = [e for e in todo if not isinstance(e, m.SetEvent)]
            # 2. Load the rows they touch
            fold = rows.Fold()
            ids = list({event.variation_id for event in todo})
            await cur.execute(LOAD_VARIATIONS, (ids,))
            variations = [rows.Variation(*row) for row in await cur.fetchall()]
            await cur.execute(LOAD_FAMILIES, (ids,))
            fold.load(variations, [rows.Family(*row) for row in await cur.fetchall()])
            # 3. Fold the events over them
            for event in todo:
                rows.evolve(fold, event)
            # 4. Write each row once
            await self._write(cur, fold)
        return applied

    async def _write(self, cur: psycopg.AsyncCursor[Any], fold: rows.Fold) -> None:
        variations, families = fold.variations, fold.families
        made_v = [rows.variation_values(variations[k]) for k in fold.made if not isinstance(k, tuple)]
        made_f = [rows.family_values(families[k]) for k in fold.made if isinstance(k, tuple)]
        changed = {
            "variations": [rows.variation_values(variations[k]) for k in fold.changed if not isinstance(k, tuple)],
            "families": [rows.family_values(families[k]) for k in fold.changed if isinstance(k, tuple)],
        }
        await self._copy(cur, "variations", made_v)
        await self._copy(cur, "families", made_f)
        for table, data in changed.items():
            if data:
                await self._copy(cur, table, data, into=STAGED[table])
                await cur.execute(UPDATE[table])
                await cur.execute(sql.SQL("delete from {}").format(sql.Identifier(STAGED[table])))
        # a family's winning outcome replaces the derivatives an earlier round left
        if replaced := [key for key in fold.derivatives if key not in fold.made]:
            await cur.execute(
                """delete from derivatives d using unnest(%b::uuid[], %b::text[]) as r (variation_id, family)
                   where d.variation_id = r.variation_id and d.family = r.family""",
                ([v for v, _ in replaced], [f for _, f in replaced]),
            )
        await self._copy(cur, "derivatives", [row for rows_ in fold.derivatives.values() for row in rows_])
        if fold.rejections:
            await cur.executemany(INSERT_REJECTIONS, fold.rejections)


def _choice(e: m.VariantChosen) -> tuple[Any, ...]:
    return (e.set_name, e.choice, e.variant, e.variation_id, e.name, e.round, e.reason, e.occurred_at, e.command_id)
