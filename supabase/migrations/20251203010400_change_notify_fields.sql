-- The change feed's payload carries the public fields of the row as committed (additive: the keys
-- of 20251203000100_change_notify.sql are unchanged), so a listener (the admin API's SSE stream)
-- sends every change as it was, in order, without re-reading a row that may have moved on since.
-- Still never targets and never evidence. NOTIFY payloads must stay under 8000 bytes: when the
-- description and rollback message make it longer, they are left out ("partial": true) and the
-- listener re-reads the row.
--   {"table":"feature_flags","op":...,"name":...,"version":...,"row":{name, enabled, rollout_percentage,
--    bucket_group, guard_state, rollback_message, description, updated_at, updated_by},"partial"?:true}
--   {"table":"rollback_events","op":"INSERT","id":...,"flag":...,"kind":...,"actor":...,"rule_id":...,"created_at":...}

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
  'Announces a committed flag change (with its public fields) or rollback event on the channel guardian_changes; never targets.';

-- Only the triggers call it.
revoke all on function public.guardian_notify_change() from public, anon, authenticated;
