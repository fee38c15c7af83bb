// Notifications: the outbox (store, worker), the notifiers (Slack, email, memory, nop) and blindness alerts.
export * from './types.ts';
export * from './message.ts';
export * from './slack.ts';
export * from './email.ts';
export * from './nop.ts';
export * from './memory.ts';
export * from './factory.ts';
export * from './outbox-store.ts';
export * from './outbox-supabase.ts';
export * from './worker.ts';
export * from './blindness.ts';
