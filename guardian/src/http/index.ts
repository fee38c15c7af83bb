// HTTP: /healthz, /readyz, /metrics and the Prometheus registry.
export * from './metrics.ts';
export * from './server.ts';
export * from './ingest.ts';
