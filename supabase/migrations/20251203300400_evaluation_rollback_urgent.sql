-- evaluate_flags(user_id) and get_my_flags() return rollback_urgent as a last column, beside
-- rollback_message (20251203300000_rollback_urgent.sql): a client in client mode sees that a
-- rollback is urgent from the same row that turns its flag off. Adding an output column changes
-- the return type, which CREATE OR REPLACE cannot do: both are dropped and created again, with
-- their bodies unchanged (from 20251203000200_empty_user_and_search_path.sql and
-- 20251125001100_evaluation_plpgsql.sql), their comments and their grants. Callers that name
-- columns, or read rows by column name (select *), keep working.

-- Dropped first (nothing in the schema depends on them; callers are clients).
drop function public.evaluate_flags(text);
drop function public.get_my_flags();

-- Every flag for one user in one round trip, ordered by name (null or empty user: ERROR for enabled flags).
create function public.evaluate_flags(user_id text)
  returns table (name text, value boolean, reason text, version bigint, guard_state text, rollback_message text, rollback_urgent boolean)
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
        f.rollback_message,
        f.rollback_urgent
      from public.feature_flags f
      left join public.flag_targets t on t.flag_name = f.name and t.user_id = evaluate_flags.user_id
      order by f.name;
  end
  $$;

-- The contract in the catalog, for people reading the schema.
comment on function public.evaluate_flags(text) is
  'All flags evaluated for user_id (name, value, reason DISABLED|TARGETING_MATCH|SPLIT|ERROR for a null or empty user_id, version, guard_state, rollback_message, rollback_urgent). service_role only.';

-- Server-side evaluation takes any user id: service_role only.
revoke execute on function public.evaluate_flags(text) from public, anon, authenticated;
grant execute on function public.evaluate_flags(text) to service_role;

-- The caller's own flags (auth.uid()); anonymous: 100% rollouts on, the rest off.
create function public.get_my_flags()
  returns table (name text, value boolean, reason text, version bigint, guard_state text, rollback_message text, rollback_urgent boolean)
  language plpgsql
  stable
  security definer
  set search_path = ''
  as $$
  #variable_conflict use_column
  declare
    uid text := auth.uid()::text;
  begin
    return query
      select
        f.name,
        case
          when not f.enabled then false
          when uid is null then f.rollout_percentage = 100
          when t.user_id is not null then true
          when f.rollout_percentage = 0 then false
          when f.rollout_percentage = 100 then true
          else public.flag_bucket(coalesce(f.bucket_group, f.name), uid) <= f.rollout_percentage
        end,
        case
          when not f.enabled then 'DISABLED'
          when t.user_id is not null then 'TARGETING_MATCH'
          else 'SPLIT'
        end,
        f.version,
        f.guard_state,
        f.rollback_message,
        f.rollback_urgent
      from public.feature_flags f
      left join public.flag_targets t on uid is not null and t.flag_name = f.name and t.user_id = uid
      order by f.name;
  end
  $$;

-- The contract in the catalog.
comment on function public.get_my_flags() is
  'The calling user''s evaluated flags (auth.uid()), with rollback_message and rollback_urgent. Anonymous: 100% rollouts on, the rest off. For anon and authenticated.';

-- Client-side evaluation of the caller's own flags.
revoke execute on function public.get_my_flags() from public;
grant execute on function public.get_my_flags() to anon, authenticated, service_role;
