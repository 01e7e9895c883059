-- Workers as last heard from their heartbeats (imagegen.workers): operational state, not history.
create table workers (
    worker            text primary key,
    families          text[] not null,
    models_loaded     text[] not null,
    device            text not null,
    free_memory_bytes bigint,
    interval_s        double precision not null,
    seen_at           timestamptz not null
);
