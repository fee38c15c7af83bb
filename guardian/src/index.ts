// Public exports of the guardian. A plain list of re-exports: each part adds its own lines.
export * from './errors.ts';
export * from './rules/schema.ts';
export * from './rules/duration.ts';
export * from './rules/parse.ts';
export * from './decide/types.ts';
export * from './decide/stats.ts';
export * from './decide/decide.ts';
export * from './sources/types.ts';
export * from './sources/http.ts';
export * from './sources/posthog.ts';
export * from './sources/sentry.ts';
export * from './sources/builtin.ts';
export * from './rules/json-schema.ts';
