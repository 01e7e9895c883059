"""The baseline of bench/replay.py: a naive projector, as imagegen's was before it applied batches.
One transaction per batch, but each event on its own: a savepoint, its id checked, then its own
statement (or three). Its rows are those of projections/rows.py (bench/replay.py checks)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from psycopg import AsyncCursor
from psycopg.types.json import Jsonb

from streams import messages as m

Handler = Callable[[AsyncCursor[Any], Any], Awaitable[None]]


async def variation_requested(cur: AsyncCursor[Any], e: m.VariationRequested) -> None:
    g = e.generation
    await cur.execute(
        """insert into variations (id, command_id, name, category, status, prompt, negative_prompt, seed, model,
               steps, guidance, priority, families, round, requested_at, updated_at, focal_point, focal_points)
           values (%s, %s, %s, %s, 'generating', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
           on conflict (id) do nothing""",
        (
            e.variation_id,
            e.command_id,
            e.name,
            e.category,
            g.prompt,
            g.negative_prompt,
            g.seed,
            g.model,
            g.steps,
            g.guidance,
            e.priority,
            list(e.families),
            e.round,
            e.occurred_at,
            e.occurred_at,
            Jsonb(e.focal_point.model_dump()) if e.focal_point else None,
            Jsonb({f: p.model_dump() for f, p in e.focal_points.items()}),
        ),
    )
    await cur.executemany(
        """insert into families (variation_id, family, status, round) values (%s, %s, 'queued', %s)
           on conflict do nothing""",
        [(e.variation_id, f, e.round) for f in e.families],
    )


async def variation_rejected(cur: AsyncCursor[Any], e: m.VariationRejected) -> None:
    await cur.execute(
        """insert into rejections (event_id, command_id, variation_id, name, reason, occurred_at)
           values (%s, %s, %s, %s, %s, %s) on conflict do nothing""",
        (e.event_id, e.command_id, e.variation_id, e.name, e.reason, e.occurred_at),
    )


async def regeneration_requested(cur: AsyncCursor[Any], e: m.RegenerationRequested) -> None:
    await cur.execute(
        """update variations set round = %s, status = 'generating', error = null, completed_at = null,
               updated_at = %s where id = %s and round < %s""",
        (e.round, e.occurred_at, e.variation_id, e.round),
    )
    await cur.execute(
        """update families set round = %s, status = 'queued', error = null, error_kind = null,
               retryable = null, started_at = null, completed_at = null
           where variation_id = %s and round < %s""",
        (e.round, e.variation_id, e.round),
    )


async def family_retry_requested(cur: AsyncCursor[Any], e: m.FamilyRetryRequested) -> None:
    await cur.execute(
        """update families set status = 'queued', error = null, error_kind = null, retryable = null,
               started_at = null, completed_at = null
           where variation_id = %s and family = %s and round = %s and status = 'failed'""",
        (e.variation_id, e.family, e.round),
    )
    if cur.rowcount:
        await cur.execute(
            """update variations set status = 'generating', error = null, completed_at = null, updated_at = %s
               where id = %s and round = %s""",
            (e.occurred_at, e.variation_id, e.round),
        )


async def family_started(cur: AsyncCursor[Any], e: m.FamilyStarted) -> None:
    await cur.execute(
        """update families set status = 'generating', attempts = attempts + 1, worker = %s, started_at = %s
           where variation_id = %s and family = %s and round = %s and status = 'queued'""",
        (e.worker, e.occurred_at, e.variation_id, e.family, e.round),
    )


async def family_completed(cur: AsyncCursor[Any], e: m.FamilyCompleted) -> None:
    await cur.execute(
        """update families set status = 'completed', error = null, error_kind = null, retryable = null,
               master_key = %s, master_url = %s, width = %s, height = %s, bytes = %s, model = %s,
               seed = %s, duration_s = %s, completed_at = %s, scheduler = %s, weights = %s, warnings = %s,
               subject_left = %s, subject_top = %s, subject_width = %s, subject_height = %s, subject_reason = %s
           where variation_id = %s and family = %s and round = %s and status in ('queued', 'generating')""",
        (
            e.master.key,
            e.master.url,
            e.master.width,
            e.master.height,
            e.master.bytes,
            e.model,
            e.seed,
            e.duration_s,
            e.occurred_at,
            e.scheduler or None,
            e.weights or None,
            list(e.warnings),
            *(e.subject or (None, None, None, None)),
            e.subject_reason,
            e.variation_id,
            e.family,
            e.round,
        ),
    )
    if cur.rowcount == 0:
        return  # an outcome of an earlier round, or not the first of this one: the first wins
    await cur.execute("delete from derivatives where variation_id = %s and family = %s", (e.variation_id, e.family))
    await cur.executemany(
        """insert into derivatives (variation_id, family, name, storage_key, public_url, width, height,
               bytes, content_type, crop_left, crop_top, crop_width, crop_height, crop_reason, crop_clear, scale)
           values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        [
            (
                e.variation_id,
                e.family,
                d.name,
                d.key,
                d.url,
                d.width,
                d.height,
                d.bytes,
                d.content_type,
                *(d.crop or (None, None, None, None)),
                d.crop_reason,
                d.crop_clear,
                d.scale,
            )
            for d in e.derivatives
        ],
    )


async def family_failed(cur: AsyncCursor[Any], e: m.FamilyFailed) -> None:
    await cur.execute(
        """update families set status = 'failed', error = %s, error_kind = %s, retryable = %s, completed_at = %s
           where variation_id = %s and family = %s and round = %s and status in ('queued', 'generating')""",
        (e.message, e.error_kind, e.retryable, e.occurred_at, e.variation_id, e.family, e.round),
    )


def _concluded(status: str) -> Handler:
    async def handler(cur: AsyncCursor[Any], e: Any) -> None:
        error = getattr(e, "error_message", None) or (
            "; ".join(f"{f}: {msg}" for f, msg in sorted(e.failed.items())) if hasattr(e, "failed") else None
        )
        await cur.execute(
            """update variations set status = %s, error = %s, completed_at = %s, updated_at = %s
               where id = %s and round = %s""",
            (status, error, e.occurred_at, e.occurred_at, e.variation_id, e.round),
        )

    return handler


async def apply(conn: Any, events: list[m.Event]) -> int:
    """Apply `events` one by one in the current transaction; returns how many were new."""
    applied = 0
    async with conn.cursor() as cur:
        for event in events:
            async with conn.transaction():
                await cur.execute(
                    "insert into applied_events (event_id) values (%s) on conflict do nothing", (event.event_id,)
                )
                if cur.rowcount:
                    await HANDLERS[type(event)](cur, event)
                    applied += 1
    return applied


HANDLERS: dict[type[m.Event], Handler] = {
    m.VariationRequested: variation_requested,
    m.VariationRejected: variation_rejected,
    m.RegenerationRequested: regeneration_requested,
    m.FamilyRetryRequested: family_retry_requested,
    m.FamilyStarted: family_started,
    m.FamilyCompleted: family_completed,
    m.FamilyFailed: family_failed,
    m.VariationCompleted: _concluded("completed"),
    m.VariationPartial: _concluded("partial"),
    m.VariationFailed: _concluded("failed"),
}
