// HTTP: /healthz, /readyz, /metrics and the Prometheus registry, exposure ingestion and OFREP.
export * from './metrics.ts';
export * from './server.ts';
export * from './ingest.ts';
export * from './ofrep.ts';
