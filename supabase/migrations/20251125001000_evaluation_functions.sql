-- Flag evaluation in SQL, the same contract as the SDK's evaluate() (DESIGN.md §4):
--   enabled = false → off (DISABLED); user in flag_targets → on (TARGETING_MATCH);
--   else on when rollout_percentage > 0 and flag_bucket(coalesce(bucket_group, name), user)
--   <= rollout_percentage (SPLIT).
-- Percentages 0 and 100 are decided without hashing (every bucket is 1..100), which gives the
-- same answer as hashing, only faster. Bodies use positional parameters ($1, $2) because a
-- parameter named user_id would be shadowed by the column flag_targets.user_id.

-- One flag for one user. Unknown flag or null user → false. Server side only (any user id).
create function public.is_feature_enabled(flag text, user_id text) returns boolean
  language sql
  stable parallel safe
  as $$
    select coalesce((
      select case
        when not f.enabled then false
        when exists (
          select 1 from public.flag_targets t where t.flag_name = f.name and t.user_id = $2
        ) then true
        when f.rollout_percentage = 0 then false
        when f.rollout_percentage = 100 then true
        else public.flag_bucket(coalesce(f.bucket_group, f.name), $2) <= f.rollout_percentage
      end
      from public.feature_flags f
      where f.name = $1 and $2 is not null
    ), false)
  $$;

comment on function public.is_feature_enabled(text, text) is
  'True when flag is on for user_id (disabled → targets → split). Unknown flag or null user: false. service_role only.';

-- Every flag for one user in one round trip, ordered by name. A null user gets false with
-- reason ERROR for enabled flags (as the SDK does for an invalid user id). Server side only.
create function public.evaluate_flags(user_id text)
  returns table (name text, value boolean, reason text, version bigint, guard_state text, rollback_message text)
  language sql
  stable parallel safe
  as $$
    select
      f.name,
      case
        when not f.enabled then false
        when $1 is null then false
        when t.user_id is not null then true
        when f.rollout_percentage = 0 then false
        when f.rollout_percentage = 100 then true
        else public.flag_bucket(coalesce(f.bucket_group, f.name), $1) <= f.rollout_percentage
      end,
      case
        when not f.enabled then 'DISABLED'
        when $1 is null then 'ERROR'
        when t.user_id is not null then 'TARGETING_MATCH'
        else 'SPLIT'
      end,
      f.version,
      f.guard_state,
      f.rollback_message
    from public.feature_flags f
    left join public.flag_targets t on t.flag_name = f.name and t.user_id = $1
    order by f.name
  $$;

comment on function public.evaluate_flags(text) is
  'All flags evaluated for user_id (name, value, reason DISABLED|TARGETING_MATCH|SPLIT, version, guard_state, rollback_message). service_role only.';

-- The caller's own flags, keyed on auth.uid() (client mode: anon key + user JWT). SECURITY
-- DEFINER so it can read flag_targets, which the caller cannot; it only ever evaluates the
-- caller's own id, so another user's targeting is never revealed.
-- Anonymous callers (no auth.uid()) have no bucket and no targets: an enabled flag at 100% is
-- on, anything less is off (reason SPLIT); the SDK's client mode mirrors this rule.
create function public.get_my_flags()
  returns table (name text, value boolean, reason text, version bigint, guard_state text, rollback_message text)
  language sql
  stable
  security definer
  set search_path = ''
  as $$
    select
      f.name,
      case
        when not f.enabled then false
        when me.uid is null then f.rollout_percentage = 100
        when exists (
          select 1 from public.flag_targets t where t.flag_name = f.name and t.user_id = me.uid
        ) then true
        when f.rollout_percentage = 0 then false
        when f.rollout_percentage = 100 then true
        else public.flag_bucket(coalesce(f.bucket_group, f.name), me.uid) <= f.rollout_percentage
      end,
      case
        when not f.enabled then 'DISABLED'
        when me.uid is not null and exists (
          select 1 from public.flag_targets t where t.flag_name = f.name and t.user_id = me.uid
        ) then 'TARGETING_MATCH'
        else 'SPLIT'
      end,
      f.version,
      f.guard_state,
      f.rollback_message
    from (select auth.uid()::text as uid) as me
    cross join public.feature_flags f
    order by f.name
  $$;

comment on function public.get_my_flags() is
  'The calling user''s evaluated flags (auth.uid()). Anonymous: 100% rollouts on, the rest off. For anon and authenticated.';

-- Server-side evaluation takes any user id: service_role only.
revoke execute on function public.is_feature_enabled(text, text) from public, anon, authenticated;
revoke execute on function public.evaluate_flags(text) from public, anon, authenticated;
grant execute on function public.is_feature_enabled(text, text) to service_role;
grant execute on function public.evaluate_flags(text) to service_role;

-- Client-side evaluation of the caller's own flags.
revoke execute on function public.get_my_flags() from public;
grant execute on function public.get_my_flags() to anon, authenticated, service_role;
