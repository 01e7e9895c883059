-- Webhooks (webhooks/): subscriptions registered through the API, and the delivery of each public
-- domain event to each subscription that wants it. Operational state, not part of the read model:
-- nothing here is rebuilt from the event log.

create table webhook_subscriptions (
    id          uuid primary key,
    url         text not null,
    -- Kept in clear, not hashed: it is the HMAC key every delivery is signed with, so the dispatcher
    -- must read it back (as GitHub and Stripe keep theirs). The API shows it once, at creation.
    secret      text not null,
    events      text[] not null default '{}',  -- the domain event types it receives; empty: all
    description text not null default '',
    active      boolean not null default true,
    inactive_reason text,
    created_at  timestamptz not null default now()
);

-- An outbox: the dispatcher inserts a pending row per (subscription, event), then posts it until it is
-- delivered or has failed every attempt. A redelivered domain event meets the unique key: one delivery.
create table webhook_deliveries (
    id               uuid primary key,  -- derived from (subscription, event): X-Imagegen-Delivery
    seq              bigint generated always as identity,  -- newest first, even within one transaction
    subscription_id  uuid not null references webhook_subscriptions (id) on delete cascade,
    event_id         uuid not null,
    event_type       text not null,
    body             text not null,  -- the event's wire JSON, sent and signed as it is
    status           text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts         integer not null default 0,
    last_status_code integer,
    last_error       text,
    last_duration_ms double precision,
    created_at       timestamptz not null default now(),
    next_attempt_at  timestamptz not null default now(),
    delivered_at     timestamptz,
    unique (subscription_id, event_id)
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_log on webhook_deliveries (subscription_id, seq desc);

create table webhook_attempts (
    delivery_id uuid not null references webhook_deliveries (id) on delete cascade,
    attempt     integer not null,
    started_at  timestamptz not null,
    duration_ms double precision not null,
    status_code integer,
    error       text,
    primary key (delivery_id, attempt)
);
