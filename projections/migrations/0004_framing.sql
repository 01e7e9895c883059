-- How each derivative was framed: what its crop keeps, whether that stayed out of the platform's
-- safe zones, and whether it was upscaled; the subject found in each master; the focal points asked for.
alter table derivatives
    add column crop_reason text,
    add column crop_clear  boolean,
    add column scale       double precision;

alter table families
    add column subject_left   integer,
    add column subject_top    integer,
    add column subject_width  integer,
    add column subject_height integer,
    add column subject_reason text;

alter table variations
    add column focal_point  jsonb,
    add column focal_points jsonb not null default '{}';
