-- A variant set's winners (A/B test results), in the order they were chosen: the last choice stands,
-- and the set's stable URLs serve its variant's images. Rebuilt from VariantChosen events.
create table if not exists set_choices (
    set_name text not null,
    choice integer not null,
    variant integer not null,
    variation_id uuid not null,
    variation_name text not null,
    round integer not null,
    reason text not null default '',
    chosen_at timestamptz not null,
    command_id uuid not null,
    primary key (set_name, choice)
);
