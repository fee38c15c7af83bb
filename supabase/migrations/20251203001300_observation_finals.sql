-- Bounded history reads. decide() needs, per flag and source, every poll of the current segment
-- of the stage and the LAST poll of each earlier segment (guardian/src/decide/decide.ts).
-- guardian_observation_history used to find those last polls by ranking every row of the stage,
-- so its cost grew with the stage's age (a day-old stage at 1,000 flags doubled a cycle's wall
-- time). This keeps the last poll of every (source, flag, stage, segment) in a small table as
-- the guardian writes observations, and reads the earlier segments from it: one row each.

-- The newest observation of each segment of each stage, per source and flag: a pointer to its row.
create table public.guardian_observation_finals (
  source text not null,
  flag_name text not null,
  stage_started_at timestamptz not null,
  since timestamptz null,
  at timestamptz not null,
  observation_id bigint not null,
  -- Rows written before segments existed have no since: they form one segment of their own, as before.
  constraint guardian_observation_finals_key unique nulls not distinct (source, flag_name, stage_started_at, since),
  -- A pruned observation takes its final with it: the same rows remain as ranking the stage would find.
  constraint guardian_observation_finals_observation_fkey foreign key (observation_id)
    references public.guardian_observations (id) on delete cascade
);

-- Describes the table.
comment on table public.guardian_observation_finals is
  'Per source, flag, stage and segment (since): the newest observation, kept by a trigger as observations are written; read by guardian_observation_history.';

-- The cascade from a pruned observation finds its final by id.
create index guardian_observation_finals_observation_idx on public.guardian_observation_finals (observation_id);

-- Keeps the finals from each INSERT statement's new rows: the newest per segment wins (ties on
-- `at` go to the later row, as the ranking did: order by at desc, id desc).
create function public.guardian_observation_finals_keep() returns trigger
  language plpgsql
  set search_path = ''
  as $$
  begin
    insert into public.guardian_observation_finals as f (source, flag_name, stage_started_at, since, at, observation_id)
    select distinct on (n.source, n.flag_name, n.stage_started_at, n.since)
           n.source, n.flag_name, n.stage_started_at, n.since, n.at, n.id
      from added n
     order by n.source, n.flag_name, n.stage_started_at, n.since, n.at desc, n.id desc
    on conflict (source, flag_name, stage_started_at, since) do update
       set at = excluded.at, observation_id = excluded.observation_id
     where (excluded.at, excluded.observation_id) > (f.at, f.observation_id);
    return null;
  end
  $$;

-- Describes the function.
comment on function public.guardian_observation_finals_keep() is
  'Trigger: records the newest observation of each segment in guardian_observation_finals.';

-- Only the trigger calls it.
revoke all on function public.guardian_observation_finals_keep() from public, anon, authenticated;

-- One statement-level trigger per INSERT (a cycle writes all its observations in one statement).
create trigger guardian_observations_keep_finals
  after insert on public.guardian_observations
  referencing new table as added
  for each statement execute function public.guardian_observation_finals_keep();

-- The finals of the observations already stored.
insert into public.guardian_observation_finals (source, flag_name, stage_started_at, since, at, observation_id)
select distinct on (o.source, o.flag_name, o.stage_started_at, o.since)
       o.source, o.flag_name, o.stage_started_at, o.since, o.at, o.id
  from public.guardian_observations o
 order by o.source, o.flag_name, o.stage_started_at, o.since, o.at desc, o.id desc;

-- Same arguments and rows as before (every poll at or after segment_since, plus the last poll of
-- every earlier segment), read from the current segment's rows and the finals: bounded by the
-- current segment and one row per earlier segment, whatever the stage's age.
create or replace function public.guardian_observation_history(p_source text, p_queries jsonb)
returns table (
  flag_name text,
  since timestamptz,
  at timestamptz,
  unit text,
  treatment_total bigint,
  treatment_errors bigint,
  control_total bigint,
  control_errors bigint
)
language sql
stable
set search_path = ''
as $$
  with q as (
    select x.flag, x.stage, x.segment_since
      from jsonb_to_recordset(coalesce(p_queries, '[]'::jsonb)) as x(flag text, stage timestamptz, segment_since timestamptz)
  ), wanted as (
    select o.id
      from q
      join public.guardian_observations o
        on o.source = p_source and o.flag_name = q.flag and o.stage_started_at = q.stage and o.at >= q.segment_since
    union
    select f.observation_id
      from q
      join public.guardian_observation_finals f
        on f.source = p_source and f.flag_name = q.flag and f.stage_started_at = q.stage and f.at < q.segment_since
  )
  select o.flag_name, o.since, o.at, o.unit, o.treatment_total, o.treatment_errors, o.control_total, o.control_errors
    from wanted w
    join public.guardian_observations o on o.id = w.id
   order by o.flag_name, o.at, o.id
$$;

-- Describes the function.
comment on function public.guardian_observation_history(text, jsonb) is
  'The observations decide() needs per flag: every poll of the current segment, and the last poll of each earlier segment of the stage (from guardian_observation_finals).';

-- Only the guardian reads it (create or replace keeps the grants; stated again for clarity).
revoke all on function public.guardian_observation_history(text, jsonb) from public, anon, authenticated;

-- The guardian's role.
grant execute on function public.guardian_observation_history(text, jsonb) to service_role;

-- Guardian state: no client reads or writes it.
alter table public.guardian_observation_finals enable row level security;

-- The service role keeps it (the trigger runs as the writer of the observations).
create policy guardian_observation_finals_service_role on public.guardian_observation_finals for all to service_role using (true) with check (true);

-- Clients get nothing.
revoke all on table public.guardian_observation_finals from public, anon, authenticated;

-- The guardian's role, like the observations table.
grant select, insert, update, delete on table public.guardian_observation_finals to service_role;
