-- restore_flag ends what a rollback added for users (20251203300100_guardian_rollback_message_urgent.sql):
-- * rollback_urgent is cleared: the flag is no longer rolled back.
-- * rollback_message: when the rollback set the rule's default message (the flag had none), the
--   restore puts back what was there before (null), unless a person has changed the message since
--   (their message stays). A message the flag had before the rollback was never touched and stays.
-- previous_state and new_state also record rollback_message and rollback_urgent. Everything else is
-- unchanged from 20251125040000_restore_flag_keeps_lock.sql (same signature, grants restated).

-- Restore a flag (by flag name: its latest rollback) or a rollback event (by id).
create or replace function public.restore_flag(
  p_flag_or_event text,
  p_actor text,
  p_reason text,
  p_idempotency_key text,
  p_channels text[] default null)
returns public.rollback_events
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_target public.rollback_events;
  v_latest public.rollback_events;
  v_event public.rollback_events;
  v_flag public.feature_flags;
  v_prev jsonb;
  v_state jsonb;
  v_targets text[];
  v_guard text;
  v_message text;
begin
  if p_flag_or_event is null or length(btrim(p_flag_or_event)) = 0 then
    raise exception 'restore_flag: p_flag_or_event is required (a flag name or a rollback event id)' using errcode = '22023';
  end if;
  if p_idempotency_key is null or length(btrim(p_idempotency_key)) = 0 then
    raise exception 'restore_flag: p_idempotency_key is required' using errcode = '22023';
  end if;
  if p_actor is null or length(btrim(p_actor)) = 0 then
    raise exception 'restore_flag: p_actor is required (who restores, for the audit log)' using errcode = '22023';
  end if;

  select * into v_event from public.rollback_events where idempotency_key = p_idempotency_key;
  if found then
    return v_event;
  end if;

  -- Which rollback: the event with this id, else the latest rollback of the flag with this name.
  select * into v_target from public.rollback_events where id::text = p_flag_or_event;
  if not found then
    if not exists (select 1 from public.feature_flags where name = p_flag_or_event) then
      raise exception 'restore_flag: no flag and no rollback event named "%"', p_flag_or_event using errcode = 'P0002';
    end if;
    select * into v_target from public.rollback_events
     where flag_name = p_flag_or_event
       and kind in ('auto_rollback', 'manual_rollback') and action <> 'notify_only'
     order by created_at desc, id desc limit 1;
    if not found then
      raise exception 'restore_flag: flag "%" has never been rolled back: nothing to restore', p_flag_or_event using errcode = 'P0002';
    end if;
  elsif v_target.kind not in ('auto_rollback', 'manual_rollback') or v_target.action = 'notify_only' then
    raise exception 'restore_flag: event % is a % (%), not a rollback that changed the flag', v_target.id, v_target.kind, v_target.action
      using errcode = '22023';
  end if;

  select * into v_flag from public.feature_flags where name = v_target.flag_name for update;
  if not found then
    raise exception 'restore_flag: flag "%" no longer exists', v_target.flag_name using errcode = 'P0002';
  end if;

  select * into v_event from public.rollback_events where idempotency_key = p_idempotency_key;
  if found then
    return v_event;
  end if;

  select * into v_event from public.rollback_events where restores_event_id = v_target.id order by created_at limit 1;
  if found then
    raise exception 'restore_flag: rollback % of flag "%" was already restored by event %', v_target.id, v_target.flag_name, v_event.id
      using errcode = '55000';
  end if;
  select * into v_latest from public.rollback_events
   where flag_name = v_target.flag_name
     and kind in ('auto_rollback', 'manual_rollback') and action <> 'notify_only'
   order by created_at desc, id desc limit 1;
  if v_latest.id <> v_target.id then
    raise exception 'restore_flag: rollback % is not the latest rollback of flag "%"; restore % instead', v_target.id, v_target.flag_name, v_latest.id
      using errcode = '55000';
  end if;

  v_prev := public.guardian_flag_state(v_target.flag_name) || public.guardian_flag_notice(v_target.flag_name);
  -- The rollback set the message (it differs before and after) and nobody changed it since: put back the old one.
  v_message := case
    when v_target.new_state ? 'rollback_message'
     and (v_target.new_state ->> 'rollback_message') is distinct from (v_target.previous_state ->> 'rollback_message')
     and v_flag.rollback_message is not distinct from (v_target.new_state ->> 'rollback_message')
      then v_target.previous_state ->> 'rollback_message'
    else v_flag.rollback_message end;
  v_state := v_target.previous_state;
  v_targets := coalesce(array(select jsonb_array_elements_text(coalesce(v_state -> 'targets', '[]'::jsonb))), '{}'::text[]);
  -- Locked before the rollback, or locked by a person since: a restore never drops a lock.
  v_guard := case when v_state ->> 'guard_state' = 'locked' or v_flag.guard_state = 'locked' then 'locked' else 'watching' end;

  perform set_config('app.actor', p_actor, true);

  update public.feature_flags
     set enabled = (v_state ->> 'enabled')::boolean,
         rollout_percentage = (v_state ->> 'rollout_percentage')::integer,
         guard_state = v_guard,
         rollback_message = v_message,
         rollback_urgent = false,
         updated_by = p_actor
   where name = v_target.flag_name;
  -- Targets exactly as they were: remove the ones added since, add back the ones removed.
  delete from public.flag_targets t
   where t.flag_name = v_target.flag_name and not (t.user_id = any (v_targets));
  insert into public.flag_targets (flag_name, user_id)
  select v_target.flag_name, u from unnest(v_targets) as u
   where not exists (select 1 from public.flag_targets t where t.flag_name = v_target.flag_name and t.user_id = u);

  insert into public.rollback_events
    (flag_name, kind, rule_id, source, action, reason, evidence, previous_state, new_state, actor, idempotency_key, restores_event_id)
  values
    (v_target.flag_name, 'restore', v_target.rule_id, v_target.source, null,
     coalesce(nullif(btrim(p_reason), ''), 'restore of rollback ' || v_target.id::text),
     jsonb_build_object('restores_event_id', v_target.id, 'rollback_reason', v_target.reason),
     v_prev, public.guardian_flag_state(v_target.flag_name) || public.guardian_flag_notice(v_target.flag_name),
     p_actor, p_idempotency_key, v_target.id)
  returning * into v_event;

  perform public.guardian_enqueue_notifications(v_event,
    coalesce(p_channels, (select array_agg(distinct o.channel) from public.notification_outbox o where o.event_id = v_target.id)));
  return v_event;
end
$$;

comment on function public.restore_flag(text, text, text, text, text[]) is
  'Puts a flag back exactly as before its latest rollback (or the given rollback event; the rule''s default message and the urgent mark go too) and writes a restore event + outbox rows.';

-- Only the service role may restore flags.
revoke all on function public.restore_flag(text, text, text, text, text[]) from public, anon, authenticated;
grant execute on function public.restore_flag(text, text, text, text, text[]) to service_role;
