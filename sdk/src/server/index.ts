/**
 * `@rollback-guardian/sdk/server`: server-only parts, which hold secrets and must never ship in a
 * browser or app bundle. Not imported by the core entry, so the core's size is unaffected.
 *
 * - {@link createExposureReporter}: reports exposures and errors to the guardian's builtin
 *   source (`POST /v1/exposures`, authenticated with the guardian's `GUARDIAN_INGEST_KEY`), for
 *   setups with neither Sentry nor PostHog.
 *
 * @example
 * import { createServerClient } from '@rollback-guardian/sdk';
 * import { createExposureReporter } from '@rollback-guardian/sdk/server';
 * const reporter = createExposureReporter({ url: 'http://guardian:8787', ingestKey: process.env.GUARDIAN_INGEST_KEY! });
 * reporter.attach(flags);
 */
export { createExposureReporter, EXPOSURES_PATH, MAX_EXPOSURE_BATCH } from './reporter.ts';
export type { EvaluationSource, ExposureReporter, ExposureReporterOptions } from './reporter.ts';
