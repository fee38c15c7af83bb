-- rollback_urgent: an operator (CLI --urgent, admin API urgent: true) or a rule (urgent: true in
-- the rules file) marks a rollback urgent: users must leave the feature at once, so the SDK ignores
-- the app's holdUntil(safePoint) for it (its save hook still runs within its bound). The mark lives
-- on the flag while it is rolled back: guardian_rollback sets it, restore_flag clears it, and a
-- change that gives the feature back to users (enabled again, or a higher percentage) ends it.
-- Public like rollback_message: clients read it from the row, get_my_flags() and the change feed.

-- The mark itself (false for every existing flag).
alter table public.feature_flags add column rollback_urgent boolean not null default false;

comment on column public.feature_flags.rollback_urgent is
  'The latest rollback was marked urgent: SDK clients switch users off without waiting for the app''s safe points. Cleared by restore or when the flag is turned back up.';

-- Ends the mark when a change exposes users again (a person re-enabled the flag or raised its
-- percentage without a restore): a later, ordinary switch-off must not inherit the old urgency.
create function public.feature_flags_urgent_ends() returns trigger
  language plpgsql
  set search_path = ''
  as $$
  begin
    if old.rollback_urgent and new.rollback_urgent
       and ((new.enabled and not old.enabled) or new.rollout_percentage > old.rollout_percentage) then
      new.rollback_urgent := false;
    end if;
    return new;
  end
  $$;

comment on function public.feature_flags_urgent_ends() is
  'Clears feature_flags.rollback_urgent when an update turns the flag back on or raises its percentage.';

-- Only the trigger calls it.
revoke all on function public.feature_flags_urgent_ends() from public, anon, authenticated;

-- Runs before every update (after feature_flags_before_write, by name: the version bump already happened).
create trigger feature_flags_urgent_ends
  before update on public.feature_flags
  for each row execute function public.feature_flags_urgent_ends();
