// examples/mobile-service from the PACKED SDK, in Node with an in-memory AsyncStorage: the service
// is copied into a fresh project where the tarball is installed and run there (Node 22 strips the
// example's types; the SDK itself is the tarball's built JavaScript). First launch online against
// the real PostgreSQL through the Supabase doubles; second launch offline starts with the
// last-known values from AsyncStorage; back online it refreshes.
import { execFile } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabase } from '../../../test/helpers/db.ts';
import type { TestDatabase } from '../../../test/helpers/db.ts';
import { installedApp, REPO_ROOT } from '../../../test/helpers/sdk-tarball.ts';
import { jwt, SupabaseDouble } from '../../../sdk/test/helpers/supabase-double.ts';

const run = promisify(execFile);
const EXAMPLE = fileURLToPath(new URL('..', import.meta.url));
const QA = '00000000-0000-4000-8000-00000000a001';

// The app's start-up, three launches in one process: the storage outlives each "app".
const SCRIPT = `
import { createClient } from '@supabase/supabase-js';
import { createFeatureFlagService } from './src/featureFlags.ts';

const disk = new Map();
const AsyncStorage = { getItem: async (k) => disk.get(k) ?? null, setItem: async (k, v) => { disk.set(k, v); } };
const session = { access_token: process.env.TOKEN, refresh_token: 'r' };
// As in React Native, supabase-js keeps the session in AsyncStorage too: an offline launch has it.
async function launch(url, signIn = false) {
  const supabase = createClient(url, process.env.ANON, { auth: { storage: AsyncStorage, persistSession: true, autoRefreshToken: false, detectSessionInUrl: false } });
  if (signIn) {
    const { error } = await supabase.auth.setSession(session);
    if (error) throw error;
  }
  const flags = createFeatureFlagService({ supabase, storage: AsyncStorage, pollIntervalMs: 50 });
  const status = await flags.ready(5000);
  return { flags, status };
}
const out = {};
const online = await launch(process.env.ONLINE, true);
out.online = { status: online.status, source: online.flags.source(), booking: online.flags.isEnabled('booking_agent_enabled'), followup: online.flags.isEnabled('followup_agent_enabled') };
await online.flags.close();
const offline = await launch(process.env.OFFLINE);
out.offline = { status: offline.status, source: offline.flags.source(), booking: offline.flags.isEnabled('booking_agent_enabled'), followup: offline.flags.isEnabled('followup_agent_enabled') };
await offline.flags.close();
const empty = new Map(disk); disk.clear();
const cold = await launch(process.env.OFFLINE);
out.coldOffline = { status: cold.status, source: cold.flags.source(), booking: cold.flags.isEnabled('booking_agent_enabled') };
await cold.flags.close();
out.stored = [...empty.keys()];
console.log(JSON.stringify(out));
process.exit(0);
`;

let db: TestDatabase;
let double: SupabaseDouble;
let app: { dir: string; remove(): void };

beforeAll(async () => {
  db = await createTestDatabase();
  double = await SupabaseDouble.start(db.url, { liveDelayMs: 50 });
  app = await installedApp({ links: ['@supabase'] });
  cpSync(join(EXAMPLE, 'src'), join(app.dir, 'src'), { recursive: true });
  writeFileSync(join(app.dir, 'launch.ts'), SCRIPT);
}, 240_000);
afterAll(async () => {
  app?.remove();
  await double?.stop();
  await db?.drop();
});

describe('examples/mobile-service (from the tarball, in-memory AsyncStorage)', () => {
  test('online first, then an offline launch starts with the last-known values; a cold offline launch has none', async () => {
    const { stdout } = await run(join(REPO_ROOT, 'node_modules/node/bin/node'), ['launch.ts'], {
      cwd: app.dir,
      env: { PATH: process.env['PATH'] ?? '', ONLINE: double.url, OFFLINE: 'http://127.0.0.1:9', ANON: jwt({ role: 'anon' }), TOKEN: jwt({ sub: QA, role: 'authenticated', aud: 'authenticated' }) },
    });
    const out = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, Record<string, unknown>>;
    // QA is a target of booking_agent_enabled and followup_agent_enabled in the seed.
    expect(out['online']).toEqual({ status: 'READY', source: 'network', booking: true, followup: true });
    expect(out['offline']).toEqual({ status: 'READY', source: 'storage', booking: true, followup: true });
    expect(out['coldOffline']).toEqual({ status: 'ERROR', source: 'none', booking: false });
    expect(out['stored']).toContain('featureFlags.v1');
  }, 60_000);
});
