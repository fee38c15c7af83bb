-- flag_targets: user ids that get a flag whatever their bucket. Other people's ids: never
-- readable by anon/authenticated (see the RLS migration). Any change bumps the flag's version.

-- One row per (flag, user).
create table public.flag_targets (
  flag_name text not null,
  user_id text not null,
  added_at timestamptz not null default now(),
  added_by text null,
  constraint flag_targets_pkey primary key (flag_name, user_id),
  constraint flag_targets_flag_name_fkey foreign key (flag_name)
    references public.feature_flags (name) on delete cascade on update cascade,
  constraint flag_targets_user_id_not_empty check (length(user_id) between 1 and 1024)
);

comment on table public.flag_targets is 'Per-flag target user ids (server side only). A change bumps feature_flags.version.';

-- Fills added_by from the actor when the writer did not say.
create function public.flag_targets_before_insert() returns trigger
  language plpgsql
  set search_path = ''
  as $$
  begin
    new.added_by := coalesce(new.added_by, public.flag_actor());
    new.added_at := coalesce(new.added_at, now());
    return new;
  end
  $$;

-- Runs before each inserted target.
create trigger flag_targets_before_insert
  before insert on public.flag_targets
  for each row execute function public.flag_targets_before_insert();

-- Bumps the version of every flag whose targets changed (once per flag per statement), so
-- clients holding an older version refresh. The feature_flags trigger does the actual bump.
create function public.flag_targets_bump_version() returns trigger
  language plpgsql
  set search_path = ''
  as $$
  begin
    -- Each branch names only the transition tables its event has.
    if tg_op = 'INSERT' then
      update public.feature_flags f set version = f.version + 1
        where f.name in (select n.flag_name from new_rows n);
    elsif tg_op = 'DELETE' then
      update public.feature_flags f set version = f.version + 1
        where f.name in (select o.flag_name from old_rows o);
    else
      update public.feature_flags f set version = f.version + 1
        where f.name in (select n.flag_name from new_rows n union select o.flag_name from old_rows o);
    end if;
    return null;
  end
  $$;

-- Statement-level triggers with transition tables: one bump per flag per statement.
create trigger flag_targets_bump_version_insert
  after insert on public.flag_targets
  referencing new table as new_rows
  for each statement execute function public.flag_targets_bump_version();

create trigger flag_targets_bump_version_update
  after update on public.flag_targets
  referencing old table as old_rows new table as new_rows
  for each statement execute function public.flag_targets_bump_version();

create trigger flag_targets_bump_version_delete
  after delete on public.flag_targets
  referencing old table as old_rows
  for each statement execute function public.flag_targets_bump_version();
