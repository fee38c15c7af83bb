// HTTP: the Hono server (/healthz, /readyz, /metrics, mounts), the one error shape, the
// prom-client metrics, exposure ingestion (bounded) and OFREP.
export * from './errors.ts';
export * from './metrics.ts';
export * from './server.ts';
export * from './admission.ts';
export * from './ingest.ts';
export * from './ofrep.ts';
