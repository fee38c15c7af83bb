-- Evaluation: an empty user id is no user (off, reason ERROR), as in the SDK core and OFREP; and
-- flag_bucket, is_feature_enabled and evaluate_flags pin search_path = '' like every other
-- function, so a caller's search_path can never swap the tables or operators they use.
-- CREATE OR REPLACE keeps each function's grants and comment.

-- The bucket function: its body uses only pg_catalog builtins, so an empty search_path is safe.
alter function public.flag_bucket(text, text) set search_path = '';

-- One flag for one user. Unknown flag, null or empty user → false. Server side only.
create or replace function public.is_feature_enabled(flag text, user_id text) returns boolean
  language plpgsql
  stable parallel safe
  set search_path = ''
  as $$
  #variable_conflict use_column
  declare
    f record;
  begin
    if is_feature_enabled.user_id is null or is_feature_enabled.user_id = '' then
      return false;
    end if;
    -- One query (one plan, one executor start) fetches the flag and whether the user is a target.
    select ff.name, ff.enabled, ff.rollout_percentage, ff.bucket_group,
           exists (select 1 from public.flag_targets t where t.flag_name = ff.name and t.user_id = is_feature_enabled.user_id) as targeted
      into f
      from public.feature_flags ff where ff.name = is_feature_enabled.flag;
    if not found or not f.enabled then
      return false;
    end if;
    if f.targeted then
      return true;
    end if;
    if f.rollout_percentage = 0 then
      return false;
    elsif f.rollout_percentage = 100 then
      return true;
    end if;
    return public.flag_bucket(coalesce(f.bucket_group, f.name), is_feature_enabled.user_id) <= f.rollout_percentage;
  end
  $$;

-- Every flag for one user in one round trip, ordered by name (null or empty user: ERROR for enabled flags).
create or replace function public.evaluate_flags(user_id text)
  returns table (name text, value boolean, reason text, version bigint, guard_state text, rollback_message text)
  language plpgsql
  stable parallel safe
  set search_path = ''
  as $$
  #variable_conflict use_column
  begin
    return query
      select
        f.name,
        case
          when not f.enabled then false
          when coalesce(evaluate_flags.user_id, '') = '' then false
          when t.user_id is not null then true
          when f.rollout_percentage = 0 then false
          when f.rollout_percentage = 100 then true
          else public.flag_bucket(coalesce(f.bucket_group, f.name), evaluate_flags.user_id) <= f.rollout_percentage
        end,
        case
          when not f.enabled then 'DISABLED'
          when coalesce(evaluate_flags.user_id, '') = '' then 'ERROR'
          when t.user_id is not null then 'TARGETING_MATCH'
          else 'SPLIT'
        end,
        f.version,
        f.guard_state,
        f.rollback_message
      from public.feature_flags f
      left join public.flag_targets t on t.flag_name = f.name and t.user_id = evaluate_flags.user_id
      order by f.name;
  end
  $$;

-- The contract in the catalog, for people reading the schema.
comment on function public.evaluate_flags(text) is
  'All flags evaluated for user_id (name, value, reason DISABLED|TARGETING_MATCH|SPLIT|ERROR for a null or empty user_id, version, guard_state, rollback_message). service_role only.';

-- Still server side only (CREATE OR REPLACE keeps grants; restated so this file stands alone).
revoke execute on function public.is_feature_enabled(text, text) from public, anon, authenticated;
-- The same for the bulk evaluation.
revoke execute on function public.evaluate_flags(text) from public, anon, authenticated;
