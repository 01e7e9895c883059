-- The projector applies a batch of events with one statement per event type (projections/handlers.py):
-- the outcome that won a family's round is marked, so that the derivatives of that outcome, and only
-- of that one, are written in the same batch.
alter table families add column completed_event uuid;
create index families_completed_event on families (completed_event) where completed_event is not null;
