-- The projector folds a batch's events in Python and writes each row once (projections/readmodel.py):
-- it no longer marks the outcome that won a family's round.
alter table families drop column if exists completed_event;
-- The projector alone writes these tables, and writes a family or a derivative only beside its
-- variation; the foreign keys checked (and share-locked) the variation's row for every family and
-- derivative written, a large share of a replay's cost. Nothing deletes a variation.
alter table families drop constraint if exists families_variation_id_fkey;
alter table derivatives drop constraint if exists derivatives_variation_id_fkey;
