-- Row level security and table rights (DESIGN.md §3). anon/authenticated may only SELECT
-- feature_flags; they never write and never see flag_targets or anything else. service_role
-- (guardian, server SDK) reads and writes everything, except that rollback_events and
-- flag_changes stay append-only (rights here, triggers for everyone including owners).
--
-- RLS is enabled on every table but not FORCEd: the table owner (the migration role, the
-- dashboard's SQL editor) administers the data and bypasses RLS as on Supabase; what must
-- hold for the owner too (append-only logs) is enforced by triggers, which nobody bypasses.

-- Start from nothing: Supabase's default privileges grant every new public table to the API
-- roles, so take those rights back first, then grant exactly what is intended.
revoke all on table
  public.feature_flags, public.flag_targets, public.flag_changes, public.rollback_events,
  public.notification_outbox, public.guardian_leases, public.guardian_rule_state,
  public.guardian_observations, public.guardian_source_health
  from public, anon, authenticated, service_role;

revoke all on sequence
  public.flag_changes_id_seq, public.rollback_events_id_seq, public.notification_outbox_id_seq,
  public.guardian_observations_id_seq
  from public, anon, authenticated, service_role;

-- Helper functions are not an API: only the roles that need them may call them directly.
revoke execute on function public.flag_actor() from public, anon, authenticated;
grant execute on function public.flag_actor() to service_role;

-- RLS on every table.
alter table public.feature_flags enable row level security;
alter table public.flag_targets enable row level security;
alter table public.flag_changes enable row level security;
alter table public.rollback_events enable row level security;
alter table public.notification_outbox enable row level security;
alter table public.guardian_leases enable row level security;
alter table public.guardian_rule_state enable row level security;
alter table public.guardian_observations enable row level security;
alter table public.guardian_source_health enable row level security;

-- feature_flags: readable by everyone (Realtime checks each subscriber's SELECT right).
grant select on table public.feature_flags to anon, authenticated;
create policy feature_flags_read_all on public.feature_flags
  for select to anon, authenticated using (true);

-- service_role: full rights on the mutable tables. (It has BYPASSRLS on Supabase and in the
-- shim; the policies keep it working where it does not.)
grant select, insert, update, delete on table
  public.feature_flags, public.flag_targets, public.notification_outbox, public.guardian_leases,
  public.guardian_rule_state, public.guardian_observations, public.guardian_source_health
  to service_role;

-- service_role: read and append only on the two logs.
grant select, insert on table public.rollback_events, public.flag_changes to service_role;

-- service_role: the id sequences of the tables it inserts into.
grant usage, select on sequence
  public.flag_changes_id_seq, public.rollback_events_id_seq, public.notification_outbox_id_seq,
  public.guardian_observations_id_seq
  to service_role;

-- Policies for service_role on every table (append-only tables: select and insert only).
create policy feature_flags_service_role on public.feature_flags for all to service_role using (true) with check (true);
create policy flag_targets_service_role on public.flag_targets for all to service_role using (true) with check (true);
create policy notification_outbox_service_role on public.notification_outbox for all to service_role using (true) with check (true);
create policy guardian_leases_service_role on public.guardian_leases for all to service_role using (true) with check (true);
create policy guardian_rule_state_service_role on public.guardian_rule_state for all to service_role using (true) with check (true);
create policy guardian_observations_service_role on public.guardian_observations for all to service_role using (true) with check (true);
create policy guardian_source_health_service_role on public.guardian_source_health for all to service_role using (true) with check (true);
create policy rollback_events_service_role_read on public.rollback_events for select to service_role using (true);
create policy rollback_events_service_role_append on public.rollback_events for insert to service_role with check (true);
create policy flag_changes_service_role_read on public.flag_changes for select to service_role using (true);
create policy flag_changes_service_role_append on public.flag_changes for insert to service_role with check (true);
