-- Realtime: the guardian on Supabase (no direct database connection) feeds its admin change stream
-- from Realtime postgres_changes on feature_flags and rollback_events, so rollback_events joins the
-- supabase_realtime publication too. Guarded like 20251125000700_realtime_publication.sql so the
-- migration runs again without error.
--
-- Who hears what: Realtime checks, per change and per subscriber, that the subscriber's role may
-- SELECT the row. Only service_role may read rollback_events (20251125000800_rls_and_grants.sql):
-- anon and authenticated clients hear nothing from this table.
--
-- The table is append-only (INSERT only), so the default replica identity (the primary key) is
-- enough: Realtime sends whole rows on INSERT.

-- Adds rollback_events to the publication once.
do $$
begin
  if not exists (
    select 1 from pg_catalog.pg_publication_tables
    where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'rollback_events'
  ) then
    alter publication supabase_realtime add table public.rollback_events;
  end if;
end
$$;
