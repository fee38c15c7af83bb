-- guardian_rollback takes two more arguments, both with defaults so every existing call (12
-- arguments, positional or named) means what it meant:
-- * p_message: a rule's default rollback message (rules file rollback_message). When the rollback
--   changes the flag and the flag has no message of its own, the flag's rollback_message is set to
--   it for this rollback; a message a person set on the flag always wins. restore_flag puts back
--   what was there before (see 20251203300200_restore_flag_message_urgent.sql).
-- * p_urgent: the rollback is urgent (CLI --urgent, admin API urgent: true, rule urgent: true):
--   feature_flags.rollback_urgent is set while the flag is rolled back, and the evidence says so.
-- previous_state and new_state also record rollback_message and rollback_urgent (a dry run's
-- new_state shows what the rollback would set). Everything else is unchanged from
-- 20251125020200_guardian_rollback.sql.

-- The old signature goes: with both present, a 12-argument call would match two functions.
drop function public.guardian_rollback(text, text, text, text, jsonb, text, text, text[], boolean, text, text, integer[]);

-- What a rollback sets for the flag's users besides its value: its message and urgency (jsonb).
create or replace function public.guardian_flag_notice(p_flag text)
returns jsonb
language sql
stable
set search_path = public, pg_temp
as $$
  select jsonb_build_object('rollback_message', f.rollback_message, 'rollback_urgent', f.rollback_urgent)
  from public.feature_flags f
  where f.name = p_flag
$$;

comment on function public.guardian_flag_notice(text) is
  'The rollback message and urgency of a flag ({rollback_message, rollback_urgent}), recorded beside guardian_flag_state in rollback events.';

-- Only the guardian's functions need it.
revoke all on function public.guardian_flag_notice(text) from public, anon, authenticated;
grant execute on function public.guardian_flag_notice(text) to service_role;

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
  p_stages integer[] default null,
  p_message text default null,
  p_urgent boolean default false)
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
  v_message text;
  v_urgent boolean;
  v_evidence jsonb := coalesce(p_evidence, '{}'::jsonb);
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

  v_prev := public.guardian_flag_state(p_flag) || public.guardian_flag_notice(p_flag);
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
  -- The rule's default message only where the flag has none; notify_only changes nothing.
  v_message := case
    when p_action <> 'notify_only' and nullif(btrim(coalesce(v_flag.rollback_message, '')), '') is null
      then coalesce(nullif(btrim(p_message), ''), v_flag.rollback_message)
    else v_flag.rollback_message end;
  v_urgent := case when p_action = 'notify_only' then v_flag.rollback_urgent else coalesce(p_urgent, false) end;
  if v_urgent and p_action <> 'notify_only' then
    v_evidence := v_evidence || jsonb_build_object('urgent', true);
  end if;
  v_guard := case
    when p_action = 'notify_only' then v_flag.guard_state
    when v_flag.guard_state = 'locked' then 'locked'
    else 'rolled_back' end;

  -- The audit trigger names the actor from app.actor (transaction-local).
  perform set_config('app.actor', p_actor, true);

  if coalesce(p_dry_run, false) then
    v_new := v_prev || jsonb_build_object('enabled', v_enabled, 'rollout_percentage', v_percentage, 'guard_state', v_guard,
      'rollback_message', v_message, 'rollback_urgent', v_urgent);
  else
    if p_action <> 'notify_only' then
      update public.feature_flags
         set enabled = v_enabled,
             rollout_percentage = v_percentage,
             guard_state = v_guard,
             rollback_message = v_message,
             rollback_urgent = v_urgent,
             updated_by = p_actor
       where name = p_flag;
    end if;
    v_new := public.guardian_flag_state(p_flag) || public.guardian_flag_notice(p_flag);
  end if;

  insert into public.rollback_events
    (flag_name, kind, rule_id, source, action, reason, evidence, previous_state, new_state, actor, idempotency_key)
  values
    (p_flag,
     case when coalesce(p_dry_run, false) then 'dry_run' else v_kind end,
     p_rule_id, p_source, p_action,
     coalesce(nullif(btrim(p_reason), ''), p_action || ' of ' || p_flag),
     v_evidence, v_prev, v_new, p_actor, p_idempotency_key)
  returning * into v_event;

  perform public.guardian_enqueue_notifications(v_event, p_channels);
  return v_event;
end
$$;

comment on function public.guardian_rollback(text, text, text, text, jsonb, text, text, text[], boolean, text, text, integer[], text, boolean) is
  'Atomic, idempotent rollback of a flag: flip (+ the rule''s default message when the flag has none, + the urgent mark) + rollback_events row + notification_outbox rows in one transaction.';

-- Only the service role (the guardian) may roll flags back.
revoke all on function public.guardian_rollback(text, text, text, text, jsonb, text, text, text[], boolean, text, text, integer[], text, boolean) from public, anon, authenticated;
grant execute on function public.guardian_rollback(text, text, text, text, jsonb, text, text, text[], boolean, text, text, integer[], text, boolean) to service_role;
