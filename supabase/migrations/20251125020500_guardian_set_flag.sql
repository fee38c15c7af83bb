-- guardian_set_flag: the one way the CLI, the admin API and the Supabase store change a flag
-- by hand, so every backend records the same actor in flag_changes (app.actor is set in the same
-- transaction) and applies the same rules. One call = one transaction = one audited change.
-- p_patch keys (all optional): enabled boolean, rollout_percentage 0..100, rollback_message text
-- (null clears it), lock boolean (true: guard_state 'locked'; false: unlock back to 'watching'),
-- add_targets text[], remove_targets text[]. Unknown keys are refused (22023).
-- Refusals (55000): enabling a rolled_back flag (restore it instead, so the restore is an event);
-- unlocking a flag that is not locked.

-- Apply a patch to a flag; returns the flag row after the change.
create or replace function public.guardian_set_flag(p_flag text, p_patch jsonb, p_actor text)
returns public.feature_flags
language plpgsql
set search_path = public, pg_temp
as $$
declare
  v_flag public.feature_flags;
  v_key text;
  v_pct integer;
begin
  if p_actor is null or length(btrim(p_actor)) = 0 then
    raise exception 'guardian_set_flag: p_actor is required (who changes the flag, for the audit log)' using errcode = '22023';
  end if;
  if p_patch is null or jsonb_typeof(p_patch) <> 'object' then
    raise exception 'guardian_set_flag: p_patch must be a JSON object' using errcode = '22023';
  end if;
  for v_key in select jsonb_object_keys(p_patch) loop
    if v_key not in ('enabled', 'rollout_percentage', 'rollback_message', 'lock', 'add_targets', 'remove_targets') then
      raise exception 'guardian_set_flag: unknown field "%" (allowed: enabled, rollout_percentage, rollback_message, lock, add_targets, remove_targets)', v_key
        using errcode = '22023';
    end if;
  end loop;
  if p_patch ? 'enabled' and jsonb_typeof(p_patch -> 'enabled') <> 'boolean' then
    raise exception 'guardian_set_flag: enabled must be true or false' using errcode = '22023';
  end if;
  if p_patch ? 'lock' and jsonb_typeof(p_patch -> 'lock') <> 'boolean' then
    raise exception 'guardian_set_flag: lock must be true or false' using errcode = '22023';
  end if;
  if p_patch ? 'rollout_percentage' then
    if jsonb_typeof(p_patch -> 'rollout_percentage') <> 'number'
       or (p_patch ->> 'rollout_percentage') !~ '^[0-9]+$'
       or (p_patch ->> 'rollout_percentage')::numeric > 100 then
      raise exception 'guardian_set_flag: rollout_percentage must be an integer from 0 to 100, got %', p_patch -> 'rollout_percentage'
        using errcode = '22023';
    end if;
    v_pct := (p_patch ->> 'rollout_percentage')::integer;
  end if;

  select * into v_flag from public.feature_flags where name = p_flag for update;
  if not found then
    raise exception 'guardian_set_flag: flag "%" does not exist', p_flag using errcode = 'P0002';
  end if;
  if (p_patch -> 'enabled') = 'true'::jsonb and v_flag.guard_state = 'rolled_back' and not v_flag.enabled then
    raise exception 'guardian_set_flag: flag "%" was rolled back; restore it (guardian restore %) so the restore is recorded', p_flag, p_flag
      using errcode = '55000';
  end if;
  if (p_patch -> 'lock') = 'false'::jsonb and v_flag.guard_state <> 'locked' then
    raise exception 'guardian_set_flag: flag "%" is not locked (it is %)', p_flag, v_flag.guard_state using errcode = '55000';
  end if;

  perform set_config('app.actor', p_actor, true);

  update public.feature_flags
     set enabled = case when p_patch ? 'enabled' then (p_patch ->> 'enabled')::boolean else enabled end,
         rollout_percentage = coalesce(v_pct, rollout_percentage),
         rollback_message = case when p_patch ? 'rollback_message' then p_patch ->> 'rollback_message' else rollback_message end,
         guard_state = case
           when (p_patch -> 'lock') = 'true'::jsonb then 'locked'
           when (p_patch -> 'lock') = 'false'::jsonb then 'watching'
           else guard_state end,
         updated_by = p_actor
   where name = p_flag;

  if p_patch ? 'remove_targets' then
    delete from public.flag_targets
     where flag_name = p_flag
       and user_id in (select jsonb_array_elements_text(p_patch -> 'remove_targets'));
  end if;
  if p_patch ? 'add_targets' then
    insert into public.flag_targets (flag_name, user_id)
    select distinct p_flag, u from jsonb_array_elements_text(p_patch -> 'add_targets') as u
     where length(btrim(u)) > 0
       and not exists (select 1 from public.flag_targets t where t.flag_name = p_flag and t.user_id = u);
  end if;

  select * into v_flag from public.feature_flags where name = p_flag;
  return v_flag;
end
$$;

comment on function public.guardian_set_flag(text, jsonb, text) is
  'Changes a flag by hand (enabled, percentage, message, lock, targets) in one audited transaction.';

-- Only the service role may change flags through it.
revoke all on function public.guardian_set_flag(text, jsonb, text) from public, anon, authenticated;
grant execute on function public.guardian_set_flag(text, jsonb, text) to service_role;
