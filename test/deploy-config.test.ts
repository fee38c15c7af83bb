/**
 * The deployment files, checked without Docker or the Supabase CLI (neither runs here):
 * compose.yaml (guardian + PostgreSQL, health checks, a migration step that runs before the
 * guardian, with a command the image contains) and supabase/config.toml (the migrations and the
 * seed `supabase db reset` applies).
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = new URL('../', import.meta.url).pathname;

interface Service {
  readonly image?: string;
  readonly build?: string;
  readonly command?: string[];
  readonly environment?: Record<string, string>;
  readonly healthcheck?: { readonly test: string[] };
  readonly depends_on?: Record<string, { readonly condition: string }>;
}

describe('compose.yaml', () => {
  const compose = parse(readFileSync(`${root}compose.yaml`, 'utf8'), { merge: true }) as { services: Record<string, Service> };
  const { db, migrate, guardian } = compose.services;

  it('PostgreSQL with a health check; the migration step waits for it; the guardian waits for the migration', () => {
    expect(db?.image).toMatch(/^postgres:1[5-9]/);
    expect(db?.healthcheck?.test.join(' ')).toContain('pg_isready');
    expect(migrate?.depends_on).toEqual({ db: { condition: 'service_healthy' } });
    expect(guardian?.depends_on).toEqual({ migrate: { condition: 'service_completed_successfully' } });
    expect(guardian?.healthcheck?.test.join(' ')).toContain('/healthz');
  });

  it('both guardian services use the image of the Dockerfile, and the migration command is in it', () => {
    const docker = readFileSync(`${root}Dockerfile`, 'utf8');
    expect(migrate?.build).toBe('.');
    expect(guardian?.build).toBe('.');
    expect(migrate?.command).toEqual(['node', 'scripts/migrate.ts', '--shim', '--seed']);
    expect(docker).toMatch(/^COPY scripts\/migrate\.ts \.\/scripts\/$/m);
    expect(existsSync(`${root}scripts/migrate.ts`)).toBe(true);
    expect(migrate?.environment?.['DATABASE_URL']).toBe(guardian?.environment?.['DATABASE_URL']);
    expect(guardian?.environment?.['DATABASE_URL']).toMatch(/^postgres:\/\/guardian:.*@db:5432\/guardian$/);
  });
});

describe('supabase/config.toml', () => {
  const toml = readFileSync(`${root}supabase/config.toml`, 'utf8');

  it('seeds with supabase/seed.sql after the migrations, on PostgreSQL 15+, with Realtime on', () => {
    expect(toml).toMatch(/^\[db\.seed\]\nenabled = true\nsql_paths = \["\.\/seed\.sql"\]$/m);
    expect(existsSync(`${root}supabase/seed.sql`)).toBe(true);
    expect(toml).toMatch(/^\[db\.migrations\]\nenabled = true$/m);
    expect(toml).toMatch(/^major_version = 15$/m);
    expect(toml).toMatch(/^\[realtime\]\n(#.*\n)*enabled = true$/m);
    expect(toml).toMatch(/^project_id = "rollback-guardian"$/m);
  });
});
