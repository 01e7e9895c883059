"""Webhook subscriptions and deliveries in Postgres (projections/migrations/0005_webhooks.sql): raw SQL,
psycopg 3. Reads return plain dicts shaped for JSON, like projections/views.py."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from streams import codec, domain_events
from streams import messages as m

Status = Literal["pending", "delivered", "failed"]

_SUBSCRIPTION = "select id, url, events, description, active, inactive_reason, created_at from webhook_subscriptions"


def delivery_id(subscription_id: uuid.UUID, event_id: uuid.UUID) -> uuid.UUID:
    """Stable across retries and redeliveries: receivers drop a delivery they have already handled."""
    return m.derive_id("webhook", subscription_id, event_id)


def _subscription(row: dict[str, Any]) -> dict[str, Any]:
    sid = str(row["id"])
    return {
        "id": sid,
        "url": row["url"],
        "events": row["events"],
        "description": row["description"],
        "active": row["active"],
        "inactiveReason": row["inactive_reason"],
        "createdAt": row["created_at"].isoformat(),
        "links": {"self": f"/api/images/webhooks/{sid}", "deliveries": f"/api/images/webhooks/{sid}/deliveries"},
    }


async def create_subscription(
    conn: AsyncConnection, url: str, secret: str, events: Sequence[str], description: str
) -> dict[str, Any]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """insert into webhook_subscriptions (id, url, secret, events, description) values (%s, %s, %s, %s, %s)
               returning id, url, events, description, active, inactive_reason, created_at""",
            (uuid.uuid4(), url, secret, list(events), description),
        )
        row = await cur.fetchone()
    assert row is not None
    return _subscription(row)


async def subscriptions(conn: AsyncConnection) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{_SUBSCRIPTION} order by created_at, id")
        return [_subscription(row) for row in await cur.fetchall()]


async def subscription(conn: AsyncConnection, sid: uuid.UUID) -> dict[str, Any] | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"{_SUBSCRIPTION} where id = %s", (sid,))
        row = await cur.fetchone()
    return _subscription(row) if row else None


async def delete_subscription(conn: AsyncConnection, sid: uuid.UUID) -> bool:
    """Deletes the subscription with its delivery log."""
    cur = await conn.execute("delete from webhook_subscriptions where id = %s", (sid,))
    return cur.rowcount == 1


async def deliveries(conn: AsyncConnection, sid: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    """The subscription's delivery log, newest first, each delivery with its attempts."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            """select d.id, d.event_id, d.event_type, d.status, d.attempts, d.last_status_code, d.last_error,
                      d.last_duration_ms, d.created_at, d.next_attempt_at, d.delivered_at,
                      (select coalesce(json_agg(json_build_object(
                                 'attempt', a.attempt, 'at', a.started_at, 'statusCode', a.status_code,
                                 'error', a.error, 'durationMs', a.duration_ms) order by a.attempt), '[]')
                         from webhook_attempts a where a.delivery_id = d.id) as attempt_log
               from webhook_deliveries d where d.subscription_id = %s order by d.seq desc limit %s""",
            (sid, limit),
        )
        rows = await cur.fetchall()
    return [
        {
            "id": str(r["id"]),
            "eventId": str(r["event_id"]),
            "eventType": r["event_type"],
            "status": r["status"],
            "attempts": r["attempts"],
            "lastStatusCode": r["last_status_code"],
            "lastError": r["last_error"],
            "lastDurationMs": r["last_duration_ms"],
            "createdAt": r["created_at"].isoformat(),
            "nextAttemptAt": r["next_attempt_at"].isoformat() if r["status"] == "pending" else None,
            "deliveredAt": r["delivered_at"].isoformat() if r["delivered_at"] else None,
            "attemptLog": r["attempt_log"],
        }
        for r in rows
    ]


# --- the dispatcher's side ------------------------------------------------------------------------


async def enqueue(conn: AsyncConnection, events: Sequence[domain_events.DomainEvent]) -> int:
    """A pending delivery of each event to each active subscription that wants it; returns how many
    were new. A subscription wants the types it names (all when it names none) that happen from its
    creation on. An event seen again finds its deliveries there already and adds nothing."""
    async with conn.transaction(), conn.cursor() as cur:
        await cur.execute("select id, events, created_at from webhook_subscriptions where active")
        wanted: list[tuple[uuid.UUID, list[str], datetime]] = await cur.fetchall()
        rows = []
        for event in events:
            kind: str = event.type  # type: ignore[attr-defined]  # every DomainEvent subclass has one
            body = codec.encode(event).decode()
            for sid, types, created_at in wanted:
                if (not types or kind in types) and created_at <= event.time:
                    rows.append((delivery_id(sid, event.id), sid, event.id, kind, body))
        if not rows:
            return 0
        await cur.executemany(
            """insert into webhook_deliveries (id, subscription_id, event_id, event_type, body)
               values (%s, %s, %s, %s, %s) on conflict do nothing""",
            rows,
        )
        return cur.rowcount


@dataclass(frozen=True)
class Due:
    """A delivery claimed for one attempt."""

    id: uuid.UUID
    subscription_id: uuid.UUID
    url: str
    secret: str
    event_type: str
    body: bytes
    attempt: int  # the number of the attempt about to be made, from 1


async def claim(conn: AsyncConnection, limit: int, lease_s: float) -> list[Due]:
    """Up to `limit` due deliveries, each held for `lease_s`: another dispatcher skips them meanwhile,
    and one this process never finishes (a crash) is due again once the lease ends."""
    cur = await conn.execute(
        """update webhook_deliveries d set next_attempt_at = now() + make_interval(secs => %s)
             from webhook_subscriptions s
            where s.id = d.subscription_id
              and d.id in (select id from webhook_deliveries where status = 'pending' and next_attempt_at <= now()
                            order by next_attempt_at limit %s for update skip locked)
        returning d.id, d.subscription_id, s.url, s.secret, d.event_type, d.body, d.attempts + 1""",
        (lease_s, limit),
    )
    return [
        Due(id=r[0], subscription_id=r[1], url=r[2], secret=r[3], event_type=r[4], body=r[5].encode(), attempt=r[6])
        for r in await cur.fetchall()
    ]


async def due_in(conn: AsyncConnection) -> float | None:
    """Seconds until the next pending delivery is due (0 if one is); None when none is pending."""
    cur = await conn.execute(
        "select extract(epoch from min(next_attempt_at) - now()) from webhook_deliveries where status = 'pending'"
    )
    row = await cur.fetchone()
    return None if row is None or row[0] is None else max(0.0, float(row[0]))


@dataclass(frozen=True)
class Attempt:
    """What one POST of a delivery gave."""

    started_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None


async def record(conn: AsyncConnection, due: Due, attempt: Attempt, status: Status, retry_in_s: float = 0.0) -> None:
    """The attempt in the delivery log, and the delivery's new state (pending: due in `retry_in_s`)."""
    async with conn.transaction(), conn.cursor() as cur:
        # the row lock taken here orders this after (or before) a concurrent delete of the subscription
        await cur.execute(
            """update webhook_deliveries set status = %s, attempts = %s, last_status_code = %s, last_error = %s,
                      last_duration_ms = %s, next_attempt_at = now() + make_interval(secs => %s),
                      delivered_at = case when %s = 'delivered' then now() end
                where id = %s""",
            (status, due.attempt, attempt.status_code, attempt.error, attempt.duration_ms, retry_in_s, status, due.id),
        )
        if cur.rowcount == 0:
            return  # the subscription was deleted meanwhile, with its log
        await cur.execute(
            """insert into webhook_attempts (delivery_id, attempt, started_at, duration_ms, status_code, error)
               values (%s, %s, %s, %s, %s, %s) on conflict do nothing""",
            (due.id, due.attempt, attempt.started_at, attempt.duration_ms, attempt.status_code, attempt.error),
        )


async def deactivate(conn: AsyncConnection, sid: uuid.UUID, reason: str) -> None:
    """No more deliveries to this subscription: the pending ones fail with `reason`."""
    async with conn.transaction():
        await conn.execute(
            "update webhook_subscriptions set active = false, inactive_reason = %s where id = %s", (reason, sid)
        )
        await conn.execute(
            """update webhook_deliveries set status = 'failed', last_error = %s
                where subscription_id = %s and status = 'pending'""",
            (reason, sid),
        )
