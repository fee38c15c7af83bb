-- Helper for the guardian's SQL functions: the restorable state of one flag as jsonb
-- ({enabled, rollout_percentage, targets, guard_state}). Rollback events store it as
-- previous_state/new_state so a restore can put back exactly what was there.

-- The state snapshot (targets sorted, so two snapshots compare equal when nothing changed).
create or replace function public.guardian_flag_state(p_flag text)
returns jsonb
language sql
stable
set search_path = public, pg_temp
as $$
  select jsonb_build_object(
    'enabled', f.enabled,
    'rollout_percentage', f.rollout_percentage,
    'targets', coalesce(
      (select jsonb_agg(t.user_id order by t.user_id) from public.flag_targets t where t.flag_name = f.name),
      '[]'::jsonb),
    'guard_state', f.guard_state)
  from public.feature_flags f
  where f.name = p_flag
$$;

comment on function public.guardian_flag_state(text) is
  'Restorable state of a flag: enabled, rollout_percentage, targets (sorted), guard_state. Used by guardian_rollback/restore_flag.';

-- Only the service role (guardian, server SDK) may call it: targets are other people's ids.
revoke all on function public.guardian_flag_state(text) from public, anon, authenticated;
grant execute on function public.guardian_flag_state(text) to service_role;
