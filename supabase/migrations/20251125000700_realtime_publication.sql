-- Realtime: clients follow feature_flags changes through the supabase_realtime publication.
-- Guarded so the migration runs again without error.

-- Adds feature_flags to the publication once.
do $$
begin
  if not exists (
    select 1 from pg_catalog.pg_publication_tables
    where pubname = 'supabase_realtime' and schemaname = 'public' and tablename = 'feature_flags'
  ) then
    alter publication supabase_realtime add table public.feature_flags;
  end if;
end
$$;

-- Realtime sends whole old rows on UPDATE/DELETE, so a client can compare versions.
alter table public.feature_flags replica identity full;
