-- What drew each family's current master: enough to draw the same pixels again.
alter table families
    add column scheduler text,
    add column weights   text,
    add column warnings  text[] not null default '{}';
