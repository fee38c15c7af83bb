-- One change feed for everything that must hear a flag change at once (DESIGN.md §8): the admin
-- API's SSE stream and the SDK's postgres transport both LISTEN on the channel
-- `guardian_changes`. The payload is small and public (never targets, never evidence): a
-- listener re-reads what it needs. Shapes (JSON text):
--   {"table":"feature_flags","op":"INSERT"|"UPDATE"|"DELETE","name":"<flag>","version":<bigint>}
--   {"table":"rollback_events","op":"INSERT","id":"<bigint as text>","flag":"<flag>","kind":"<kind>"}
-- NOTIFY is transactional: listeners hear a change only after its transaction commits, and a
-- rolled-back write is never announced.

-- Sends one notification per changed flag row or new event row.
create function public.guardian_notify_change() returns trigger
  language plpgsql
  set search_path = ''
  as $$
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
      perform pg_notify('guardian_changes', json_build_object(
        'table', 'feature_flags', 'op', tg_op, 'name', new.name, 'version', new.version)::text);
      return new;
    end if;
    perform pg_notify('guardian_changes', json_build_object(
      'table', 'rollback_events', 'op', tg_op, 'id', new.id::text, 'flag', new.flag_name, 'kind', new.kind)::text);
    return new;
  end
  $$;

comment on function public.guardian_notify_change() is
  'Announces a committed flag change or rollback event on the channel guardian_changes (public fields only).';

-- Every committed insert, update or delete of a flag (a target change bumps the version, so it is one too).
create trigger feature_flags_notify_change
  after insert or update or delete on public.feature_flags
  for each row execute function public.guardian_notify_change();

-- Every new rollback, restore or dry-run event.
create trigger rollback_events_notify_change
  after insert on public.rollback_events
  for each row execute function public.guardian_notify_change();

-- Only the triggers call it.
revoke all on function public.guardian_notify_change() from public, anon, authenticated;
