-- The outbox deliverer's claim: which worker holds a 'delivering' row. outbox_complete and
-- outbox_fail only touch a row its holder still holds, so a worker whose lock expired (and whose
-- row another worker reclaimed) can never mark someone else's delivery.

-- Holder of the row's current claim (null unless status = 'delivering').
alter table public.notification_outbox add column if not exists locked_by text null;

comment on column public.notification_outbox.locked_by is 'Worker id holding the row while status = delivering (see outbox_claim).';
