-- The read model, rebuilt at will from imagegen.events.

create table variations (
    id              uuid primary key,
    command_id      uuid not null,  -- the CreateVariation that made it: a repeated POST is recognised
    name            text not null unique,
    category        text not null default '',
    status          text not null,
    prompt          text not null,
    negative_prompt text not null default '',
    seed            bigint not null,
    model           text not null,
    steps           integer not null,
    guidance        double precision not null,
    priority        text not null default 'normal',
    families        text[] not null,
    round           integer not null default 1,
    error           text,
    requested_at    timestamptz not null,
    updated_at      timestamptz not null,
    completed_at    timestamptz
);
create index variations_requested_at on variations (requested_at desc, id);
create index variations_category on variations (category, requested_at desc);
create index variations_status on variations (status, requested_at desc);

create table families (
    variation_id uuid not null references variations (id) on delete cascade,
    family       text not null,
    status       text not null,
    round        integer not null,
    attempts     integer not null default 0,
    worker       text,
    error        text,
    error_kind   text,
    retryable    boolean,
    master_key   text,
    master_url   text,
    width        integer,
    height       integer,
    bytes        integer,
    model        text,
    seed         bigint,
    duration_s   double precision,
    started_at   timestamptz,
    completed_at timestamptz,
    primary key (variation_id, family)
);

create table derivatives (
    variation_id uuid not null references variations (id) on delete cascade,
    family       text not null,
    name         text not null,
    storage_key  text not null,
    public_url   text not null,
    width        integer not null,
    height       integer not null,
    bytes        integer not null,
    content_type text not null,
    crop_left    integer,
    crop_top     integer,
    crop_width   integer,
    crop_height  integer,
    primary key (variation_id, name)
);

-- Commands the aggregate refused (a taken name): visible without touching the variation.
create table rejections (
    event_id     uuid primary key,
    command_id   uuid not null,
    variation_id uuid not null,
    name         text not null,
    reason       text not null,
    occurred_at  timestamptz not null
);
create index rejections_command on rejections (command_id);

-- Where the projector is in each partition, written in the same transaction as the rows.
create table projection_positions (
    topic       text not null,
    partition   integer not null,
    next_offset bigint not null,
    primary key (topic, partition)
);

-- Events already applied: a redelivered event (same id, other offset) is a no-op.
create table applied_events (
    event_id uuid primary key
);
