-- The hi-res pass a family's current master was drawn with (its img2img strength; 0: none).
alter table families
    add column refine double precision;
