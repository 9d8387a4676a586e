{#- cow_migration: an overlay view goes (its triggers with it), so that a migration may
    drop or retype the columns it reads; refresh_cow makes it again. The change table is
    locked first, as commit and disable lock it. -#}
LOCK TABLE {{ changes|qualified }} IN ACCESS EXCLUSIVE MODE
--;
DROP VIEW IF EXISTS {{ view|qualified }}
