"""Reads of the read model for the API: raw SQL, returning plain dicts shaped for JSON."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

_VARIATION = """select id, name, category, status, prompt, negative_prompt, seed, model, steps, guidance,
       priority, families, round, error, requested_at, updated_at, completed_at, focal_point, focal_points,
       variant_set, variant
       from variations"""


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def _box(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {side: row[f"{prefix}_{side}"] for side in ("left", "top", "width", "height")}


def _variation(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "category": row["category"],
        "status": row["status"],
        "round": row["round"],
        "isDxJob": row["priority"] == "dx",
        "generation": {
            "prompt": row["prompt"],
            "negativePrompt": row["negative_prompt"],
            "seed": row["seed"],
            "model": row["model"],
            "inferenceSteps": row["steps"],
            "guidanceScale": row["guidance"],
        },
        "focalPoint": row["focal_point"],
        "focalPoints": row["focal_points"],
        "variantSet": {"name": row["variant_set"], "variant": row["variant"]} if row["variant_set"] else None,
        "error": row["error"],
        "createdAt": _iso(row["requested_at"]),
        "updatedAt": _iso(row["updated_at"]),
        "completedAt": _iso(row["completed_at"]),
    }


async def _detail(conn: AsyncConnection, row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    result = _variation(row)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """select family, status, round, attempts, error, error_kind, master_url, width, height, bytes,
                      duration_s, started_at, completed_at, model, seed, scheduler, weights, refine, warnings,
                      subject_left, subject_top, subject_width, subject_height, subject_reason
               from families where variation_id = %s""",
            (row["id"],),
        )
        families = {r["family"]: r for r in await cur.fetchall()}
        await cur.execute(
            """select family, name, public_url, width, height, bytes, content_type,
                      crop_left, crop_top, crop_width, crop_height, crop_reason, crop_clear, scale
               from derivatives where variation_id = %s order by family, name""",
            (row["id"],),
        )
        derivatives = await cur.fetchall()
    result["families"] = [
        {
            "name": name,
            "status": f["status"],
            "round": f["round"],
            "attempts": f["attempts"],
            "error": f["error"],
            "errorKind": f["error_kind"],
            "publicUrl": f["master_url"],
            "width": f["width"],
            "height": f["height"],
            "bytes": f["bytes"],
            "durationSeconds": f["duration_s"],
            "drawnWith": {
                "model": f["model"],
                "seed": f["seed"],
                "scheduler": f["scheduler"],
                "weights": f["weights"],
                "refine": f["refine"],
            },
            "warnings": f["warnings"],
            "subject": _box(f, "subject") | {"foundBy": f["subject_reason"]} if f["subject_left"] is not None else None,
            "startedAt": _iso(f["started_at"]),
            "completedAt": _iso(f["completed_at"]),
            "derivatives": [
                {
                    "name": d["name"],
                    "url": d["public_url"],
                    "width": d["width"],
                    "height": d["height"],
                    "bytes": d["bytes"],
                    "contentType": d["content_type"],
                    "cropBox": _box(d, "crop") if d["crop_left"] is not None else None,
                    "cropReason": d["crop_reason"],
                    "subjectClearOfSafeZones": d["crop_clear"],
                    "scale": d["scale"],
                    "upscaled": d["scale"] is not None and d["scale"] > 1,
                }
                for d in derivatives
                if d["family"] == name
            ],
        }
        for name in row["families"]
        if (f := families.get(name))
    ]
    return result


async def variation(conn: AsyncConnection, variation_id: uuid.UUID) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_VARIATION + " where id = %s", (variation_id,))
        return await _detail(conn, await cur.fetchone())


async def variation_by_name(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_VARIATION + " where name = %s", (name,))
        return await _detail(conn, await cur.fetchone())


async def variations(
    conn: AsyncConnection,
    limit: int,
    offset: int,
    status: str | None,
    category: str | None,
    search: str | None,
    variant_set: str | None = None,
) -> tuple[list[dict[str, Any]], int]:
    where, args = ["true"], []
    if variant_set:
        where.append("variant_set = %s")
        args.append(variant_set)
    if status:
        where.append("status = %s")
        args.append(status)
    if category:
        where.append("category = %s")
        args.append(category)
    if search:
        where.append("(name ilike %s or category ilike %s)")
        args += [f"%{search}%", f"%{search}%"]
    clause = " where " + " and ".join(where)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute("select count(*) as n from variations" + clause, args)
        total = (await cur.fetchone() or {"n": 0})["n"]
        await cur.execute(
            _VARIATION + clause + " order by requested_at desc, id limit %s offset %s", [*args, limit, offset]
        )
        rows = await cur.fetchall()
    return [_variation(r) for r in rows], total


async def variant_set(conn: AsyncConnection, name: str) -> list[dict[str, Any]]:
    """The variations of a variant set, in their order, each with its families (empty: no such set)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(_VARIATION + " where variant_set = %s order by variant", (name,))
        rows = await cur.fetchall()
    return [found for row in rows if (found := await _detail(conn, row))]


async def set_choices(conn: AsyncConnection, name: str) -> list[dict[str, Any]]:
    """A variant set's choices of a winner, the first first (the last one stands)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """select choice, variant, variation_id, variation_name, round, reason, chosen_at, command_id
               from set_choices where set_name = %s order by choice""",
            (name,),
        )
        rows = await cur.fetchall()
    return [
        {
            "choice": r["choice"],
            "variant": r["variant"],
            "variationId": str(r["variation_id"]),
            "name": r["variation_name"],
            "round": r["round"],
            "reason": r["reason"],
            "chosenAt": _iso(r["chosen_at"]),
            "commandId": str(r["command_id"]),
        }
        for r in rows
    ]


async def set_winner(conn: AsyncConnection, name: str) -> tuple[int, str] | None:
    """The variant a set's last choice made its winner, and that variant's variation name."""
    cur = await conn.execute(
        "select variant, variation_name from set_choices where set_name = %s order by choice desc limit 1", (name,)
    )
    row = await cur.fetchone()
    return (row[0], row[1]) if row else None


async def image_key(conn: AsyncConnection, variation_name: str, name: str) -> str | None:
    """The storage key of a family master or a derivative of a variation."""
    cur = await conn.execute(
        """select d.storage_key from derivatives d join variations v on v.id = d.variation_id
           where v.name = %s and d.name = %s
           union all
           select f.master_key from families f join variations v on v.id = f.variation_id
           where v.name = %s and f.family = %s and f.master_key is not null
           limit 1""",
        (variation_name, name, variation_name, name),
    )
    row = await cur.fetchone()
    return row[0] if row else None


async def command(conn: AsyncConnection, command_id: uuid.UUID) -> dict[str, Any] | None:
    """What became of a create command: accepted (it made a variation) or rejected (and why)."""
    cur = await conn.execute(
        """select 'accepted', id, name, null from variations where command_id = %s
           union all
           select 'rejected', variation_id, name, reason from rejections where command_id = %s
           limit 1""",
        (command_id, command_id),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return {
        "commandId": str(command_id),
        "status": row[0],
        "variationId": str(row[1]),
        "name": row[2],
        "reason": row[3],
    }


async def command_id(conn: AsyncConnection, variation_id: uuid.UUID) -> uuid.UUID | None:
    cur = await conn.execute("select command_id from variations where id = %s", (variation_id,))
    row = await cur.fetchone()
    return row[0] if row else None


async def workers(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Every worker heard from, with the seconds since its last heartbeat and whether it is live
    (heard from within three of its own intervals)."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """select worker, families, models_loaded, device, free_memory_bytes, interval_s, seen_at,
                      device_memory_total_bytes, device_memory_allocated_bytes,
                      extract(epoch from now() - seen_at) as age
               from workers order by seen_at desc"""
        )
        rows = await cur.fetchall()
    return [
        {
            "worker": r["worker"],
            "families": r["families"],
            "modelsLoaded": r["models_loaded"],
            "device": r["device"],
            "freeMemoryBytes": r["free_memory_bytes"],
            "deviceMemoryTotalBytes": r["device_memory_total_bytes"],
            "deviceMemoryAllocatedBytes": r["device_memory_allocated_bytes"],
            "lastSeenAt": _iso(r["seen_at"]),
            "secondsSinceSeen": round(max(float(r["age"]), 0.0), 1),
            "live": float(r["age"]) <= 3 * r["interval_s"],
        }
        for r in rows
    ]


async def last_completions(conn: AsyncConnection) -> dict[str, Any]:
    cur = await conn.execute(
        "select family, max(completed_at) filter (where status = 'completed'),"
        " count(*) filter (where status = 'completed') from families group by family"
    )
    return {family: {"lastCompletedAt": _iso(at), "completed": n} for family, at, n in await cur.fetchall()}


async def status_counts(conn: AsyncConnection) -> dict[str, Any]:
    """For /metrics: variations by status, families by (family, status), and per family the count
    and total seconds of its completed drawings."""
    variations = await conn.execute("select status, count(*) from variations group by status")
    v: dict[str, int] = dict(await variations.fetchall())
    families = await conn.execute("select family, status, count(*) from families group by family, status")
    f = {(family, status): n for family, status, n in await families.fetchall()}
    durations = await conn.execute(
        """select family, count(*), coalesce(sum(duration_s), 0) from families
           where status = 'completed' and duration_s is not null group by family"""
    )
    d = {family: (n, total) for family, n, total in await durations.fetchall()}
    return {"variations": v, "families": f, "durations": d}


async def queue_jobs(
    conn: AsyncConnection, families: list[str], states: tuple[str, ...], limit: int = 1000
) -> list[dict[str, Any]]:
    """The family jobs of the current rounds in `states` ("waiting", "running", "failed"): running
    ones (drawing), then waiting ones (queued families of variations being drawn) in the order they
    are taken, DX first, then failed ones not given up on; oldest first within each."""
    where = {
        "waiting": "(f.status = 'queued' and v.status = 'generating')",
        "running": "f.status = 'generating'",
        "failed": "f.status = 'failed'",
    }
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            f"""select case f.status when 'queued' then 'waiting' when 'generating' then 'running' else f.status end
                       as state, v.id, v.name, f.family, v.priority, f.round, f.attempts, f.worker, f.error,
                       v.requested_at, f.started_at, f.completed_at,
                       extract(epoch from now() - case f.status when 'failed' then f.completed_at
                                                     else coalesce(f.started_at, v.updated_at) end) as age
                from families f join variations v on v.id = f.variation_id
                where f.family = any(%s) and ({" or ".join(where[s] for s in states)})
                order by f.status = 'failed', f.status = 'queued', v.priority <> 'dx', v.requested_at, v.name,
                         f.family
                limit %s""",
            (families, limit),
        )
        rows = await cur.fetchall()
    return [
        {
            "state": r["state"],
            "variationId": str(r["id"]),
            "variation": r["name"],
            "family": r["family"],
            "priority": r["priority"],
            "round": r["round"],
            "attempts": r["attempts"],
            "worker": r["worker"],
            "error": r["error"],
            "seconds": round(max(float(r["age"]), 0.0), 1),
            "startedAt": _iso(r["started_at"]),
        }
        for r in rows
    ]
