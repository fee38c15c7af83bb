// HTTP: /healthz, /readyz, /metrics and the Prometheus registry, exposure ingestion, OFREP and the dashboard.
export * from './metrics.ts';
export * from './server.ts';
export * from './ingest.ts';
export * from './ofrep.ts';
export * from './dashboard.ts';
