-- The change feed's payload carries rollback_urgent beside rollback_message (additive: every key of
-- 20251203010400_change_notify_fields.sql is unchanged), so the SDK's postgres transport and the
-- admin API's stream see an urgent rollback without re-reading the row. It stays in a "partial"
-- payload too (a boolean: it never makes the payload long).

-- Sends one notification per changed flag row or new event row, with its public fields.
create or replace function public.guardian_notify_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
  declare
    v_row jsonb;
    v_payload text;
  begin
    if tg_table_name = 'feature_flags' then
      if tg_op = 'DELETE' then
        perform pg_notify('guardian_changes', json_build_object(
          'table', 'feature_flags', 'op', tg_op, 'name', old.name, 'version', old.version)::text);
        return old;
      end if;
      -- An UPDATE that changed nothing kept its version (feature_flags_before_write): say nothing.
      if tg_op = 'UPDATE' and new.version = old.version then
        return new;
      end if;
      v_row := jsonb_build_object(
        'name', new.name, 'enabled', new.enabled, 'rollout_percentage', new.rollout_percentage,
        'bucket_group', new.bucket_group, 'guard_state', new.guard_state, 'rollback_message', new.rollback_message,
        'rollback_urgent', new.rollback_urgent,
        'description', new.description, 'updated_at', new.updated_at, 'updated_by', new.updated_by);
      v_payload := json_build_object('table', 'feature_flags', 'op', tg_op, 'name', new.name, 'version', new.version, 'row', v_row)::text;
      if octet_length(v_payload) > 7900 then
        v_payload := json_build_object('table', 'feature_flags', 'op', tg_op, 'name', new.name, 'version', new.version,
          'row', v_row - 'description' - 'rollback_message' - 'updated_by', 'partial', true)::text;
      end if;
      perform pg_notify('guardian_changes', v_payload);
      return new;
    end if;
    perform pg_notify('guardian_changes', json_build_object(
      'table', 'rollback_events', 'op', tg_op, 'id', new.id::text, 'flag', new.flag_name, 'kind', new.kind,
      'actor', left(new.actor, 500), 'rule_id', left(new.rule_id, 500), 'created_at', new.created_at)::text);
    return new;
  end
  $$;

comment on function public.guardian_notify_change() is
  'Announces a committed flag change (with its public fields, rollback_urgent included) or rollback event on the channel guardian_changes; never targets.';

-- Only the triggers call it.
revoke all on function public.guardian_notify_change() from public, anon, authenticated;
