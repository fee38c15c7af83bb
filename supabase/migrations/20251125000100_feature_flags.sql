-- feature_flags: one row per flag, the public part of a flag's definition (safe for every
-- client and for Realtime). See DESIGN.md §3. Targets live in flag_targets.

-- The flags themselves. Constraint names say what was wrong when a write is refused.
create table public.feature_flags (
  name text not null,
  description text not null default '',
  enabled boolean not null default false,
  rollout_percentage integer not null default 0,
  bucket_group text null,
  version bigint not null default 1,
  updated_at timestamptz not null default now(),
  updated_by text null,
  guard_state text not null default 'watching',
  rollback_message text null,
  stage_started_at timestamptz not null default now(),
  constraint feature_flags_pkey primary key (name),
  constraint feature_flags_name_format check (name ~ '^[a-z][a-z0-9_]{1,63}$'),
  constraint feature_flags_rollout_percentage_range check (rollout_percentage between 0 and 100),
  constraint feature_flags_bucket_group_format check (bucket_group is null or bucket_group ~ '^[a-z][a-z0-9_]{1,63}$'),
  constraint feature_flags_guard_state_valid check (guard_state in ('watching', 'rolled_back', 'locked')),
  constraint feature_flags_version_positive check (version >= 1)
);

comment on table public.feature_flags is 'Feature flags (public fields only). version is bumped by trigger on every change, targets included.';
comment on column public.feature_flags.bucket_group is 'Flags sharing a group nest their cohorts; null means the flag''s own name.';
comment on column public.feature_flags.guard_state is 'watching: the guardian may act; rolled_back: it rolled the flag back and will not touch it again; locked: never acted on.';
comment on column public.feature_flags.stage_started_at is 'When enabled or rollout_percentage last changed: the guardian counts errors since then.';

-- Who is making a change: the app.actor setting (guardian, CLI), else the JWT subject
-- (dashboard, API), else the database role (raw SQL).
create function public.flag_actor() returns text
  language sql stable
  set search_path = ''
  as $$
    select coalesce(
      nullif(current_setting('app.actor', true), ''),
      nullif((nullif(current_setting('request.jwt.claims', true), '')::jsonb) ->> 'sub', ''),
      current_user::text
    )
  $$;

comment on function public.flag_actor() is 'The actor recorded for a change: app.actor, else the JWT sub, else current_user.';

-- Keeps version, updated_at, updated_by and stage_started_at right whoever writes the row.
create function public.feature_flags_before_write() returns trigger
  language plpgsql
  set search_path = ''
  as $$
  begin
    if tg_op = 'INSERT' then
      new.version := 1;
      new.updated_at := now();
      new.updated_by := coalesce(new.updated_by, public.flag_actor());
      new.stage_started_at := now();
      return new;
    end if;
    -- An UPDATE that changes nothing is left alone (no version bump, no audit row).
    if new is not distinct from old then
      return new;
    end if;
    new.version := old.version + 1;
    new.updated_at := now();
    if new.updated_by is not distinct from old.updated_by then
      new.updated_by := public.flag_actor();
    end if;
    if new.enabled is distinct from old.enabled or new.rollout_percentage is distinct from old.rollout_percentage then
      new.stage_started_at := now();
    else
      new.stage_started_at := old.stage_started_at;
    end if;
    return new;
  end
  $$;

-- Runs the bookkeeping above before every insert and update.
create trigger feature_flags_before_write
  before insert or update on public.feature_flags
  for each row execute function public.feature_flags_before_write();
