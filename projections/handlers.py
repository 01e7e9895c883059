"""The read model's raw SQL: one small function per event type, each one statement (or two) over a
whole batch of events staged in the temporary table `staged` (seq, event_id, type, variation_id, e).

Statements run round by round, each round in the order of a variation's life (requested, rejected,
regenerated, started, finished, concluded). `phases` cuts a batch wherever that order would reorder
the events of one row, so a batch gives the rows one-at-a-time application would give. Within a
phase, duplicates keep the event that would have won: the first start and the first outcome of a
family's round, the last regeneration and conclusion of a variation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from psycopg import AsyncCursor

from streams import messages as m

Handler = Callable[[AsyncCursor[Any], dict[str, int]], Awaitable[None]]

# Each statement reads a payload's fields many times: kept inline and uncompressed (toast_tuple_target,
# storage external), a field costs a lookup rather than decompressing the whole payload each time.
STAGE = (
    """create temporary table if not exists staged (
           seq          integer primary key,
           event_id     uuid not null,
           type         text not null,
           variation_id uuid not null,
           round        integer not null,
           e            jsonb not null
       ) with (toast_tuple_target = 8160) on commit delete rows""",
    "alter table staged alter column e set storage external",
)

PHASES: dict[type[m.Event], int] = {
    m.VariationRequested: 0,
    m.VariationRejected: 0,
    m.RegenerationRequested: 1,
    m.FamilyStarted: 2,
    m.FamilyCompleted: 3,
    m.FamilyFailed: 3,
    m.VariationCompleted: 4,
    m.VariationPartial: 4,
    m.VariationFailed: 4,
}


def round_of(event: m.Event) -> int:
    return int(getattr(event, "round", 1))


def phases(events: Iterable[m.Event]) -> list[list[m.Event]]:
    """`events` cut into batches in which no row goes back to an earlier phase of its life.

    A variation's row and each of its families' rows keep their own (round, phase): families drawn
    one after another stay in one batch, and so does a regeneration after the round before it. A
    request or a regeneration touches the variation's row and all its families' rows.
    """
    batches: list[list[m.Event]] = [[]]
    # (variation, family or None for its own row) -> (round, phase) reached
    reached: dict[tuple[Any, str | None], tuple[int, int]] = {}
    # a request or a regeneration reaches every family row of its variation, seen in the batch or not
    floor: dict[Any, tuple[int, int]] = {}
    families: dict[Any, set[str]] = {}
    for event in events:
        phase = (round_of(event), PHASES[type(event)])
        family = getattr(event, "family", None)
        vid = event.variation_id
        whole = isinstance(event, m.VariationRequested | m.RegenerationRequested)
        touched = [(vid, None), *((vid, f) for f in families.get(vid, ()))] if whole else [(vid, family)]
        if any(reached.get(key, (0, -1)) > phase for key in touched) or floor.get(vid, (0, -1)) > phase:
            batches.append([])
            reached, floor, families = {}, {}, {}
        for key in touched:
            reached[key] = phase
        if whole:
            floor[vid] = phase
        if family is not None:
            families.setdefault(vid, set()).add(family)
        batches[-1].append(event)
    return [b for b in batches if b]


async def variation_requested(cur: AsyncCursor[Any], at: dict[str, int]) -> None:
    await cur.execute(
        """insert into variations (id, command_id, name, category, status, prompt, negative_prompt, seed, model,
               steps, guidance, priority, families, round, requested_at, updated_at, focal_point, focal_points)
           select variation_id, (e->>'command_id')::uuid, e->>'name', e->>'category', 'generating',
               e->'generation'->>'prompt', e->'generation'->>'negative_prompt', (e->'generation'->>'seed')::bigint,
               e->'generation'->>'model', (e->'generation'->>'steps')::integer,
               (e->'generation'->>'guidance')::double precision, e->>'priority',
               array(select jsonb_array_elements_text(e->'families')), (e->>'round')::integer,
               (e->>'occurred_at')::timestamptz, (e->>'occurred_at')::timestamptz,
               nullif(e->'focal_point', 'null'::jsonb), coalesce(e->'focal_points', '{}'::jsonb)
           from staged where round = %(round)s and type = 'VariationRequested' order by seq
           on conflict (id) do nothing""",
        at,
    )
    await cur.execute(
        """insert into families (variation_id, family, status, round)
           select variation_id, family, 'queued', (e->>'round')::integer
           from staged, jsonb_array_elements_text(e->'families') as family
           where round = %(round)s and type = 'VariationRequested' order by seq
           on conflict do nothing""",
        at,
    )


async def variation_rejected(cur: AsyncCursor[Any], at: dict[str, int]) -> None:
    await cur.execute(
        """insert into rejections (event_id, command_id, variation_id, name, reason, occurred_at)
           select event_id, (e->>'command_id')::uuid, variation_id, e->>'name', e->>'reason',
               (e->>'occurred_at')::timestamptz
           from staged where round = %(round)s and type = 'VariationRejected' on conflict do nothing""",
        at,
    )


_LAST_REGENERATION = """with r as (
    select distinct on (variation_id) variation_id, (e->>'round')::integer as round,
        (e->>'occurred_at')::timestamptz as at
    from staged where round = %(round)s and type = 'RegenerationRequested' order by variation_id, seq desc)"""


async def regeneration_requested(cur: AsyncCursor[Any], at: dict[str, int]) -> None:
    await cur.execute(
        _LAST_REGENERATION
        + """ update variations v set round = r.round, status = 'generating', error = null, completed_at = null,
                  updated_at = r.at
              from r where v.id = r.variation_id and v.round < r.round""",
        at,
    )
    await cur.execute(
        _LAST_REGENERATION
        + """ update families f set round = r.round, status = 'queued', error = null, error_kind = null,
                  retryable = null, started_at = null, completed_at = null
              from r where f.variation_id = r.variation_id and f.round < r.round""",
        at,
    )


async def family_started(cur: AsyncCursor[Any], at: dict[str, int]) -> None:
    await cur.execute(
        """with s as (
               select distinct on (variation_id, e->>'family', (e->>'round')::integer)
                   variation_id, e->>'family' as family, (e->>'round')::integer as round, e->>'worker' as worker,
                   (e->>'occurred_at')::timestamptz as at
               from staged where round = %(round)s and type = 'FamilyStarted'
               order by variation_id, e->>'family', (e->>'round')::integer, seq)
           update families f set status = 'generating', attempts = attempts + 1, worker = s.worker, started_at = s.at
           from s where f.variation_id = s.variation_id and f.family = s.family and f.round = s.round
               and f.status = 'queued'""",
        at,
    )


# The first outcome (completed or failed) of each family's round; an earlier batch's outcome, or
# one of an older round, leaves the row alone.
_FIRST_OUTCOMES = """with o as (
    select distinct on (variation_id, e->>'family', (e->>'round')::integer)
        event_id, type, variation_id, e->>'family' as family, (e->>'round')::integer as round, e
    from staged where round = %(round)s and type in ('FamilyCompleted', 'FamilyFailed')
    order by variation_id, e->>'family', (e->>'round')::integer, seq)"""


async def family_completed(cur: AsyncCursor[Any], at: dict[str, int]) -> None:
    await cur.execute(
        _FIRST_OUTCOMES
        + """ update families f set status = 'completed', error = null, error_kind = null, retryable = null,
                  master_key = o.e->'master'->>'key', master_url = o.e->'master'->>'url',
                  width = (o.e->'master'->>'width')::integer, height = (o.e->'master'->>'height')::integer,
                  bytes = (o.e->'master'->>'bytes')::integer, model = o.e->>'model',
                  seed = (o.e->>'seed')::bigint, duration_s = (o.e->>'duration_s')::double precision,
                  completed_at = (o.e->>'occurred_at')::timestamptz, scheduler = nullif(o.e->>'scheduler', ''),
                  weights = nullif(o.e->>'weights', ''),
                  warnings = array(select jsonb_array_elements_text(o.e->'warnings')),
                  subject_left = (o.e->'subject'->>0)::integer, subject_top = (o.e->'subject'->>1)::integer,
                  subject_width = (o.e->'subject'->>2)::integer, subject_height = (o.e->'subject'->>3)::integer,
                  subject_reason = o.e->>'subject_reason', completed_event = o.event_id
              from o where o.type = 'FamilyCompleted' and f.variation_id = o.variation_id and f.family = o.family
                  and f.round = o.round and f.status in ('queued', 'generating')""",
        at,
    )
    # the derivatives of the outcomes that won just now replace the family's earlier ones
    await cur.execute(
        """delete from derivatives d using staged s, families f
           where s.round = %(round)s and s.type = 'FamilyCompleted' and f.completed_event = s.event_id
               and d.variation_id = f.variation_id and d.family = f.family""",
        at,
    )
    await cur.execute(
        """insert into derivatives (variation_id, family, name, storage_key, public_url, width, height, bytes,
               content_type, crop_left, crop_top, crop_width, crop_height, crop_reason, crop_clear, scale)
           select f.variation_id, f.family, d->>'name', d->>'key', d->>'url', (d->>'width')::integer,
               (d->>'height')::integer, (d->>'bytes')::integer, d->>'content_type', (d->'crop'->>0)::integer,
               (d->'crop'->>1)::integer, (d->'crop'->>2)::integer, (d->'crop'->>3)::integer, d->>'crop_reason',
               (d->>'crop_clear')::boolean, (d->>'scale')::double precision
           from staged s join families f on f.completed_event = s.event_id, jsonb_array_elements(s.e->'derivatives') d
           where s.round = %(round)s and s.type = 'FamilyCompleted'""",
        at,
    )


async def family_failed(cur: AsyncCursor[Any], at: dict[str, int]) -> None:
    await cur.execute(
        _FIRST_OUTCOMES
        + """ update families f set status = 'failed', error = o.e->>'message', error_kind = o.e->>'error_kind',
                  retryable = (o.e->>'retryable')::boolean, completed_at = (o.e->>'occurred_at')::timestamptz
              from o where o.type = 'FamilyFailed' and f.variation_id = o.variation_id and f.family = o.family
                  and f.round = o.round and f.status in ('queued', 'generating')""",
        at,
    )


async def concluded(cur: AsyncCursor[Any], at: dict[str, int]) -> None:
    await cur.execute(
        """with c as (
               select distinct on (variation_id, (e->>'round')::integer)
                   variation_id, (e->>'round')::integer as round, (e->>'occurred_at')::timestamptz as at,
                   case type when 'VariationCompleted' then 'completed' when 'VariationPartial' then 'partial'
                       else 'failed' end as status,
                   coalesce(e->>'error_message', (select string_agg(key || ': ' || value, '; ' order by key)
                                                  from jsonb_each_text(e->'failed'))) as error
               from staged
               where round = %(round)s and type in ('VariationCompleted', 'VariationPartial', 'VariationFailed')
               order by variation_id, (e->>'round')::integer, seq desc)
           update variations v set status = c.status, error = c.error, completed_at = c.at, updated_at = c.at
           from c where v.id = c.variation_id and v.round = c.round""",
        at,
    )


# In the order of a variation's life, each with the event types it applies: it runs when they are staged.
HANDLERS: tuple[tuple[frozenset[str], Handler], ...] = tuple(
    (frozenset(types), handler)
    for types, handler in (
        (("VariationRequested",), variation_requested),
        (("VariationRejected",), variation_rejected),
        (("RegenerationRequested",), regeneration_requested),
        (("FamilyStarted",), family_started),
        (("FamilyCompleted",), family_completed),
        (("FamilyFailed",), family_failed),
        (("VariationCompleted", "VariationPartial", "VariationFailed"), concluded),
    )
)
