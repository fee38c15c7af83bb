/**
 * Rollback Guardian SDK: the evaluation core (no dependencies, no Node built-ins).
 * Adapters (supabase, react, openfeature, sentry, posthog) are separate entry points.
 */
export { bucket, evaluate, murmur3_32 } from './core/index.ts';
export type { EvaluationReason, EvaluationResult, FlagDefinition } from './core/index.ts';
