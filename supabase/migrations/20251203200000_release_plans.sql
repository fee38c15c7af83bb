-- Release plans (DESIGN.md §9): the guardian walks a flag through the stages of a plan written in
-- the rules file (e.g. 10 -> 50 -> 100), promoting a stage only on evidence of safety. The plan
-- itself is configuration; its state (active, paused by a person's change, completed, …) lives
-- here so it survives restarts and is shared by replicas. A promotion is one call of
-- guardian_promote: it checks the flag is still at the stage and version the decision was made
-- on, moves it, writes a 'promote' event with its evidence and the outbox rows, in one
-- transaction, exactly once per idempotency key.
-- Errors carry SQLSTATEs the stores map to stable codes:
--   P0002 the flag (or its plan) does not exist -> NOT_FOUND
--   55000 the flag or plan moved on              -> STORE_CONFLICT
--   22023 a bad argument                         -> BAD_ARGUMENT

-- New event kinds: a promotion, and a plan paused, resumed or aborted (by the guardian or a person).
alter table public.rollback_events drop constraint rollback_events_kind_valid;
alter table public.rollback_events add constraint rollback_events_kind_valid
  check (kind in ('auto_rollback', 'manual_rollback', 'restore', 'dry_run', 'promote', 'plan_paused', 'plan_resumed', 'plan_aborted'));

-- One row per flag with a plan: its status and the flag version it last saw.
create table public.guardian_release_plans (
  flag_name text not null,
  status text not null default 'active',
  reason text null,
  flag_version bigint not null,
  running boolean not null default false,
  last_report jsonb null,
  assessed_at timestamptz null,
  updated_at timestamptz not null default now(),
  updated_by text not null,
  constraint guardian_release_plans_pkey primary key (flag_name),
  constraint guardian_release_plans_flag_name_fkey foreign key (flag_name) references public.feature_flags (name) on delete cascade,
  constraint guardian_release_plans_status_valid check (status in ('active', 'paused', 'completed', 'aborted', 'stopped')),
  constraint guardian_release_plans_updated_by_not_empty check (length(updated_by) > 0)
);

comment on table public.guardian_release_plans is
  'State of each flag''s release plan: active, paused (a person changed the flag, or no evidence by max_time), completed, aborted, or stopped by a rollback.';
comment on column public.guardian_release_plans.flag_version is
  'The flag version the plan last saw or made: another version while running means someone else changed the flag, and the plan pauses.';
comment on column public.guardian_release_plans.last_report is
  'What the guardian last saw of the stage (time, users, evidence for safety and for harm, why it waits), for guardian plans and the dashboard.';
comment on column public.guardian_release_plans.running is
  'Whether the flag was enabled and watched at that version (a change while waiting for the first enable is adopted, not a conflict).';

-- RLS on every table; only the guardian (service_role) reads and writes plan state.
alter table public.guardian_release_plans enable row level security;
revoke all on table public.guardian_release_plans from public, anon, authenticated;
grant select, insert, update, delete on table public.guardian_release_plans to service_role;
create policy guardian_release_plans_service_role on public.guardian_release_plans for all to service_role using (true) with check (true);

-- Creates the plan row of a flag when it has none (status active, at the flag's version) and
-- returns the row; an existing row is returned unchanged.
create function public.guardian_plan_sync(p_flag text, p_actor text)
returns public.guardian_release_plans
language plpgsql
set search_path = ''
as $$
declare
  v_plan public.guardian_release_plans;
  v_flag public.feature_flags;
begin
  select * into v_plan from public.guardian_release_plans where flag_name = p_flag;
  if found then
    return v_plan;
  end if;
  select * into v_flag from public.feature_flags where name = p_flag;
  if not found then
    raise exception 'guardian_plan_sync: flag "%" does not exist', p_flag using errcode = 'P0002';
  end if;
  insert into public.guardian_release_plans (flag_name, status, flag_version, running, updated_by)
  values (p_flag, 'active', v_flag.version, v_flag.enabled and v_flag.guard_state = 'watching', coalesce(nullif(btrim(p_actor), ''), 'guardian'))
  on conflict (flag_name) do nothing;
  select * into v_plan from public.guardian_release_plans where flag_name = p_flag;
  return v_plan;
end
$$;

comment on function public.guardian_plan_sync(text, text) is 'The plan row of a flag, created (active, at the flag''s version) when missing.';

-- Changes a plan's status (pause, resume, abort, stop, or adopt the flag's current version while
-- waiting), optionally only from an expected status and plan version, and writes an event with outbox rows when
-- p_event_kind is given. Returns the plan row and the event (null when none) as one JSON object.
create function public.guardian_plan_set_status(
  p_flag text,
  p_status text,
  p_reason text,
  p_actor text,
  p_expected_status text[] default null,
  p_event_kind text default null,
  p_idempotency_key text default null,
  p_channels text[] default null,
  p_evidence jsonb default '{}'::jsonb,
  p_expected_flag_version bigint default null)
returns jsonb
language plpgsql
set search_path = ''
as $$
declare
  v_plan public.guardian_release_plans;
  v_flag public.feature_flags;
  v_event public.rollback_events;
  v_state jsonb;
begin
  if p_status is null or p_status not in ('active', 'paused', 'completed', 'aborted', 'stopped') then
    raise exception 'guardian_plan_set_status: p_status must be active, paused, completed, aborted or stopped, got %', coalesce(p_status, 'null')
      using errcode = '22023';
  end if;
  if p_actor is null or length(btrim(p_actor)) = 0 then
    raise exception 'guardian_plan_set_status: p_actor is required (who acts, for the audit log)' using errcode = '22023';
  end if;
  if p_event_kind is not null and (p_event_kind not in ('plan_paused', 'plan_resumed', 'plan_aborted') or p_idempotency_key is null) then
    raise exception 'guardian_plan_set_status: p_event_kind must be plan_paused, plan_resumed or plan_aborted, with an idempotency key'
      using errcode = '22023';
  end if;

  -- A repeat of an already committed call: return its outcome, change nothing.
  if p_idempotency_key is not null then
    select * into v_event from public.rollback_events where idempotency_key = p_idempotency_key;
    if found then
      select * into v_plan from public.guardian_release_plans where flag_name = p_flag;
      return jsonb_build_object('plan', to_jsonb(v_plan), 'event', to_jsonb(v_event));
    end if;
  end if;

  -- The flag row first, then the plan row: the same order as guardian_promote and guardian_rollback.
  select * into v_flag from public.feature_flags where name = p_flag for update;
  if not found then
    raise exception 'guardian_plan_set_status: flag "%" does not exist', p_flag using errcode = 'P0002';
  end if;
  select * into v_plan from public.guardian_release_plans where flag_name = p_flag for update;
  if not found then
    raise exception 'guardian_plan_set_status: flag "%" has no release plan (add one under plans: in the rules file)', p_flag using errcode = 'P0002';
  end if;
  if p_idempotency_key is not null then
    select * into v_event from public.rollback_events where idempotency_key = p_idempotency_key;
    if found then
      return jsonb_build_object('plan', to_jsonb(v_plan), 'event', to_jsonb(v_event));
    end if;
  end if;
  if p_expected_flag_version is not null and v_plan.flag_version <> p_expected_flag_version then
    raise exception 'guardian_plan_set_status: the plan of "%" moved on (it is at flag version %, not %)', p_flag, v_plan.flag_version, p_expected_flag_version
      using errcode = '55000';
  end if;
  if p_expected_status is not null and not (v_plan.status = any (p_expected_status)) then
    raise exception 'guardian_plan_set_status: the plan of "%" is %, not %', p_flag, v_plan.status, array_to_string(p_expected_status, ' or ')
      using errcode = '55000';
  end if;

  update public.guardian_release_plans
     set status = p_status,
         reason = nullif(btrim(coalesce(p_reason, '')), ''),
         flag_version = v_flag.version,
         running = v_flag.enabled and v_flag.guard_state = 'watching',
         updated_at = now(),
         updated_by = p_actor
   where flag_name = p_flag
  returning * into v_plan;

  if p_event_kind is not null then
    v_state := public.guardian_flag_state(p_flag);
    insert into public.rollback_events
      (flag_name, kind, reason, evidence, previous_state, new_state, actor, idempotency_key)
    values
      (p_flag, p_event_kind, coalesce(nullif(btrim(p_reason), ''), p_event_kind || ' of ' || p_flag),
       coalesce(p_evidence, '{}'::jsonb), v_state, v_state, p_actor, p_idempotency_key)
    returning * into v_event;
    perform public.guardian_enqueue_notifications(v_event, p_channels);
    return jsonb_build_object('plan', to_jsonb(v_plan), 'event', to_jsonb(v_event));
  end if;
  return jsonb_build_object('plan', to_jsonb(v_plan), 'event', null);
end
$$;

comment on function public.guardian_plan_set_status(text, text, text, text, text[], text, text, text[], jsonb, bigint) is
  'Sets a release plan''s status (at the flag''s current version), with an event and its notifications when asked.';

-- The atomic, idempotent promotion (see the header). Returns the event row (the existing one on a repeat).
create function public.guardian_promote(
  p_flag text,
  p_from integer,
  p_to integer,
  p_expected_version bigint,
  p_final boolean,
  p_evidence jsonb,
  p_reason text,
  p_actor text,
  p_idempotency_key text,
  p_channels text[])
returns public.rollback_events
language plpgsql
set search_path = ''
as $$
declare
  v_flag public.feature_flags;
  v_plan public.guardian_release_plans;
  v_event public.rollback_events;
  v_prev jsonb;
begin
  if p_idempotency_key is null or length(btrim(p_idempotency_key)) = 0 then
    raise exception 'guardian_promote: p_idempotency_key is required (for example promote:<flag>:<version>)' using errcode = '22023';
  end if;
  if p_from is null or p_to is null or p_to <= p_from or p_to > 100 or p_from < 1 then
    raise exception 'guardian_promote: p_to (%) must be above p_from (%) and both within 1..100', p_to, p_from using errcode = '22023';
  end if;
  if p_actor is null or length(btrim(p_actor)) = 0 then
    raise exception 'guardian_promote: p_actor is required (who acts, for the audit log)' using errcode = '22023';
  end if;

  -- A repeat of an already committed call: return its event, change nothing.
  select * into v_event from public.rollback_events where idempotency_key = p_idempotency_key;
  if found then
    return v_event;
  end if;

  -- Serialize every actor on this flag: concurrent calls (replicas) wait here.
  select * into v_flag from public.feature_flags where name = p_flag for update;
  if not found then
    raise exception 'guardian_promote: flag "%" does not exist', p_flag using errcode = 'P0002';
  end if;
  select * into v_plan from public.guardian_release_plans where flag_name = p_flag for update;
  if not found then
    raise exception 'guardian_promote: flag "%" has no release plan', p_flag using errcode = 'P0002';
  end if;

  -- Re-check after the locks: a racing call with the same key may have committed while we waited.
  select * into v_event from public.rollback_events where idempotency_key = p_idempotency_key;
  if found then
    return v_event;
  end if;

  if v_plan.status <> 'active' then
    raise exception 'guardian_promote: the plan of "%" is %: nothing is promoted until it is resumed', p_flag, v_plan.status using errcode = '55000';
  end if;
  if v_flag.version <> p_expected_version or v_plan.flag_version <> p_expected_version then
    raise exception 'guardian_promote: flag "%" changed (version % now, the decision was made on %): not promoting', p_flag, v_flag.version, p_expected_version
      using errcode = '55000';
  end if;
  if not v_flag.enabled or v_flag.guard_state <> 'watching' or v_flag.rollout_percentage <> p_from then
    raise exception 'guardian_promote: flag "%" is not at stage % and watched (now enabled %, at %, %)', p_flag, p_from || '%', v_flag.enabled, v_flag.rollout_percentage || '%', v_flag.guard_state
      using errcode = '55000';
  end if;

  v_prev := public.guardian_flag_state(p_flag);
  -- The audit trigger names the actor from app.actor (transaction-local).
  perform set_config('app.actor', p_actor, true);
  update public.feature_flags set rollout_percentage = p_to, updated_by = p_actor where name = p_flag
  returning * into v_flag;

  update public.guardian_release_plans
     set status = case when coalesce(p_final, false) then 'completed' else 'active' end,
         reason = case when coalesce(p_final, false) then 'reached its last stage' else null end,
         flag_version = v_flag.version,
         running = true,
         updated_at = now(),
         updated_by = p_actor
   where flag_name = p_flag;

  insert into public.rollback_events
    (flag_name, kind, reason, evidence, previous_state, new_state, actor, idempotency_key)
  values
    (p_flag, 'promote', coalesce(nullif(btrim(p_reason), ''), 'promote of ' || p_flag || ' to ' || p_to || '%'),
     coalesce(p_evidence, '{}'::jsonb) || jsonb_build_object('from', p_from, 'to', p_to, 'final', coalesce(p_final, false)),
     v_prev, public.guardian_flag_state(p_flag), p_actor, p_idempotency_key)
  returning * into v_event;

  perform public.guardian_enqueue_notifications(v_event, p_channels);
  return v_event;
end
$$;

comment on function public.guardian_promote(text, integer, integer, bigint, boolean, jsonb, text, text, text, text[]) is
  'Atomic, idempotent promotion of a flag to its next stage: checks stage and version, moves it, writes the promote event and its outbox rows.';

-- Only the service role (the guardian, the CLI) runs plans.
revoke all on function public.guardian_plan_sync(text, text) from public, anon, authenticated;
revoke all on function public.guardian_plan_set_status(text, text, text, text, text[], text, text, text[], jsonb, bigint) from public, anon, authenticated;
revoke all on function public.guardian_promote(text, integer, integer, bigint, boolean, jsonb, text, text, text, text[]) from public, anon, authenticated;
grant execute on function public.guardian_plan_sync(text, text) to service_role;
grant execute on function public.guardian_plan_set_status(text, text, text, text, text[], text, text, text[], jsonb, bigint) to service_role;
grant execute on function public.guardian_promote(text, integer, integer, bigint, boolean, jsonb, text, text, text, text[]) to service_role;
