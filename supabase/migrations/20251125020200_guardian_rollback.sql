-- guardian_rollback: the one exactly-once act of the guardian. In ONE transaction it locks the
-- flag row, returns the existing event when the idempotency key was already used (no second flip,
-- no second outbox rows), flips the flag (disable / step_back / notify_only), marks it
-- rolled_back, writes the append-only rollback event with the previous state, and one
-- notification_outbox row per channel. Errors carry SQLSTATEs the stores map to stable codes:
--   P0002 the flag does not exist             -> NOT_FOUND
--   55000 the flag's state refuses the action -> STORE_CONFLICT
--   22023 a bad argument                      -> BAD_ARGUMENT
--
-- Decisions (documented in the guardian README):
-- * Automatic actions (p_kind 'auto_rollback', dry runs included) refuse flags whose guard_state
--   is 'rolled_back' or 'locked'.
-- * A manual rollback ('manual_rollback') of a LOCKED flag is allowed: a lock keeps the guardian's
--   hands off, not a person's. The flag stays 'locked' (a manual rollback never unlocks it), and a
--   later restore puts it back as 'locked'. A manual 'disable' of a flag that is already disabled
--   is refused (nothing to roll back).
-- * step_back goes to the highest stage strictly below the current percentage, taken from
--   p_stages when given, else from the percentages this flag had in flag_changes; with no stage
--   below, it disables the flag.
-- * A dry run changes nothing on the flag; it writes a 'dry_run' event whose new_state is the
--   state the action WOULD have produced (and its notifications, so people see what would happen).

-- The previous rollout stage of a flag from its own change history (null when there is none).
create or replace function public.guardian_previous_stage(p_flag text, p_current integer, p_stages integer[] default null)
returns integer
language plpgsql
stable
set search_path = public, pg_temp
as $$
declare
  v_stage integer;
begin
  if p_stages is not null then
    select max(s) into v_stage from unnest(p_stages) as s where s > 0 and s < p_current;
    return v_stage;
  end if;
  select max((c.new_row ->> 'rollout_percentage')::integer) into v_stage
  from public.flag_changes c
  where c.flag_name = p_flag
    and c.op in ('insert', 'update')
    and c.new_row ? 'rollout_percentage'
    and (c.new_row ->> 'rollout_percentage')::integer > 0
    and (c.new_row ->> 'rollout_percentage')::integer < p_current;
  return v_stage;
end
$$;

comment on function public.guardian_previous_stage(text, integer, integer[]) is
  'Highest rollout stage below p_current: from p_stages when given, else from the flag''s flag_changes history; null when none.';

revoke all on function public.guardian_previous_stage(text, integer, integer[]) from public, anon, authenticated;
grant execute on function public.guardian_previous_stage(text, integer, integer[]) to service_role;

-- The atomic rollback (see the header). Returns the event row (the existing one on a repeat).
create or replace function public.guardian_rollback(
  p_flag text,
  p_action text,
  p_rule_id text,
  p_source text,
  p_evidence jsonb,
  p_actor text,
  p_idempotency_key text,
  p_channels text[],
  p_dry_run boolean,
  p_reason text,
  p_kind text default 'auto_rollback',
  p_stages integer[] default null)
returns public.rollback_events
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_flag public.feature_flags;
  v_event public.rollback_events;
  v_kind text := coalesce(p_kind, 'auto_rollback');
  v_prev jsonb;
  v_new jsonb;
  v_enabled boolean;
  v_percentage integer;
  v_guard text;
  v_stage integer;
begin
  -- Arguments: every refusal names the argument and what to do.
  if p_idempotency_key is null or length(btrim(p_idempotency_key)) = 0 then
    raise exception 'guardian_rollback: p_idempotency_key is required (for example <rule_id>:<flag>:<version>)'
      using errcode = '22023';
  end if;
  if p_action is null or p_action not in ('disable', 'step_back', 'notify_only') then
    raise exception 'guardian_rollback: p_action must be disable, step_back or notify_only, got %', coalesce(p_action, 'null')
      using errcode = '22023';
  end if;
  if v_kind not in ('auto_rollback', 'manual_rollback') then
    raise exception 'guardian_rollback: p_kind must be auto_rollback or manual_rollback, got % (dry runs use p_dry_run)', v_kind
      using errcode = '22023';
  end if;
  if p_actor is null or length(btrim(p_actor)) = 0 then
    raise exception 'guardian_rollback: p_actor is required (who acts, for the audit log)'
      using errcode = '22023';
  end if;

  -- A repeat of an already committed call: return its event, change nothing.
  select * into v_event from public.rollback_events where idempotency_key = p_idempotency_key;
  if found then
    return v_event;
  end if;

  -- Serialize every actor on this flag: concurrent calls wait here.
  select * into v_flag from public.feature_flags where name = p_flag for update;
  if not found then
    raise exception 'guardian_rollback: flag "%" does not exist', p_flag using errcode = 'P0002';
  end if;

  -- Re-check after the lock: a concurrent call with the same key may have committed while we waited.
  select * into v_event from public.rollback_events where idempotency_key = p_idempotency_key;
  if found then
    return v_event;
  end if;

  if v_kind = 'auto_rollback' and v_flag.guard_state in ('rolled_back', 'locked') then
    raise exception 'guardian_rollback: flag "%" is %: the guardian does not act on it (a person restores or unlocks it)', p_flag, v_flag.guard_state
      using errcode = '55000';
  end if;
  if v_kind = 'manual_rollback' and p_action = 'disable' and not v_flag.enabled then
    raise exception 'guardian_rollback: flag "%" is already disabled: nothing to roll back', p_flag
      using errcode = '55000';
  end if;

  v_prev := public.guardian_flag_state(p_flag);
  v_enabled := v_flag.enabled;
  v_percentage := v_flag.rollout_percentage;
  if p_action = 'disable' then
    v_enabled := false;
  elsif p_action = 'step_back' then
    v_stage := public.guardian_previous_stage(p_flag, v_flag.rollout_percentage, p_stages);
    if v_stage is null then
      v_enabled := false;
    else
      v_percentage := v_stage;
    end if;
  end if;
  v_guard := case
    when p_action = 'notify_only' then v_flag.guard_state
    when v_flag.guard_state = 'locked' then 'locked'
    else 'rolled_back' end;

  -- The audit trigger names the actor from app.actor (transaction-local).
  perform set_config('app.actor', p_actor, true);

  if coalesce(p_dry_run, false) then
    v_new := v_prev || jsonb_build_object('enabled', v_enabled, 'rollout_percentage', v_percentage, 'guard_state', v_guard);
  else
    if p_action <> 'notify_only' then
      update public.feature_flags
         set enabled = v_enabled,
             rollout_percentage = v_percentage,
             guard_state = v_guard,
             updated_by = p_actor
       where name = p_flag;
    end if;
    v_new := public.guardian_flag_state(p_flag);
  end if;

  insert into public.rollback_events
    (flag_name, kind, rule_id, source, action, reason, evidence, previous_state, new_state, actor, idempotency_key)
  values
    (p_flag,
     case when coalesce(p_dry_run, false) then 'dry_run' else v_kind end,
     p_rule_id, p_source, p_action,
     coalesce(nullif(btrim(p_reason), ''), p_action || ' of ' || p_flag),
     coalesce(p_evidence, '{}'::jsonb), v_prev, v_new, p_actor, p_idempotency_key)
  returning * into v_event;

  perform public.guardian_enqueue_notifications(v_event, p_channels);
  return v_event;
end
$$;

comment on function public.guardian_rollback(text, text, text, text, jsonb, text, text, text[], boolean, text, text, integer[]) is
  'Atomic, idempotent rollback of a flag: flip + rollback_events row + notification_outbox rows in one transaction.';

-- Only the service role (the guardian) may roll flags back.
revoke all on function public.guardian_rollback(text, text, text, text, jsonb, text, text, text[], boolean, text, text, integer[]) from public, anon, authenticated;
grant execute on function public.guardian_rollback(text, text, text, text, jsonb, text, text, text[], boolean, text, text, integer[]) to service_role;
