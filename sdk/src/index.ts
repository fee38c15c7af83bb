/**
 * Rollback Guardian SDK: the evaluation core and the server/client-mode clients. No runtime
 * dependency and no Node built-in, so it runs in browsers, React Native, Deno and Node.
 * Adapters (supabase, postgres, react, openfeature, sentry, posthog) are separate entry points.
 *
 * @example
 * import { createServerClient, evaluate } from '@rollback-guardian/sdk';
 */
export { bucket, compileFlag, compiledBucket, evaluate, evaluateCompiled, isCompiledOn, murmur3_32 } from './core/index.ts';
export type { CompiledFlag, EvaluationReason, EvaluationResult, FlagDefinition } from './core/index.ts';
export * from './client/index.ts';
