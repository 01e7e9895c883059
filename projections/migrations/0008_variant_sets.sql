-- Variant sets (A/B tests): sibling variations made by one request, one seed each, listed and
-- regenerated together. A variation outside a set has neither column.
alter table variations add column if not exists variant_set text;
alter table variations add column if not exists variant integer;
create index if not exists variations_variant_set on variations (variant_set, variant) where variant_set is not null;
