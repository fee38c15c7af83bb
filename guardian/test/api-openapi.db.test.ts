/**
 * The OpenAPI 3.1 document at /api/v1/openapi.json: valid for a real OpenAPI validator
 * (@seriousme/openapi-schema-validator), and every operation in it answered as documented: a
 * request is built from the document (path parameters, If-Match where it says so, a body that
 * the documented request schema accepts), and the answer's status and body must match the
 * documented response schema (turned back into a validator with zod's fromJSONSchema).
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';

import { ADMIN_TOKEN, BASE_STATUS, startApi, type ApiHarness } from './api-helpers.ts';

type Json = Record<string, unknown>;

/** Request bodies per operation (each is first checked against the document's request schema). */
const BODIES: Record<string, unknown> = {
  createFlag: { name: 'openapi_flag', description: 'made from the document' },
  patchFlag: { enabled: true, rolloutPercentage: 10 },
  changeTargets: { add: ['u-1', 'u-2'], remove: ['u-3'] },
  rollbackFlag: { reason: 'openapi test' },
  restoreFlag: { reason: 'back' },
  pausePlan: { reason: 'openapi test', notify: false },
  resumePlan: {},
  abortPlan: { reason: 'done' },
};

/** The order operations run in (a flag is created before it is changed, rolled back, restored, disabled and deleted). */
const ORDER = [
  'getMe',
  'listFlags',
  'createFlag',
  'getFlag',
  'patchFlag',
  'listTargets',
  'changeTargets',
  'rollbackFlag',
  'restoreFlag',
  'listEvents',
  'listAudit',
  'listFlagAudit',
  'getFlagUsage',
  'getStatus',
  'listPlans',
  'pausePlan',
  'resumePlan',
  'abortPlan',
  'streamChanges',
  'deleteFlag',
];

describe('OpenAPI document', () => {
  let api: ApiHarness;
  let doc: Json;
  let deref: Json;
  beforeAll(async () => {
    api = await startApi('pglite');
    // The flag the operations use has a release plan, so the plan operations answer 200.
    api.status = {
      ...BASE_STATUS,
      plans: [{ flag: 'openapi_flag', stages: [10, 50, 100].map((percentage) => ({ percentage, minTimeMs: 3_600_000, maxTimeMs: 86_400_000, minUsers: 200 })), guard: ['openapi-guard'], onBreach: 'step_back', margin: 0.005, alpha: 0.05 }],
    };
    const res = await fetch(`${api.base}/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as Json;
    const validator = new Validator();
    const result = await validator.validate(structuredClone(doc));
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    deref = validator.resolveRefs() as Json;
  });
  afterAll(() => api?.close());

  it('is valid OpenAPI 3.1, needs no auth itself, and documents every operation with a role', () => {
    expect(doc['openapi']).toBe('3.1.0');
    const ops = Object.values(doc['paths'] as Record<string, Record<string, Json>>).flatMap((p) => Object.values(p));
    expect(ops.map((o) => o['operationId']).sort()).toEqual([...ORDER].sort());
    for (const o of ops) expect(o['x-required-role'], String(o['operationId'])).toMatch(/^(viewer|editor|admin)$/);
    // The schema checks below can fail: a documented schema refuses a wrong answer.
    const getFlag = (deref['paths'] as Record<string, Record<string, Json>>)['/flags/{name}']!['get']!;
    const schema = ((getFlag['responses'] as Record<string, { content: Record<string, { schema: Json }> }>)['200']!.content['application/json']!.schema);
    expect(z.fromJSONSchema(schema as never).safeParse({ flag: { name: 'x' } }).success).toBe(false);
  });

  it('answers a request built from the document for every operation as documented', async () => {
    const paths = deref['paths'] as Record<string, Record<string, Json>>;
    const byId = new Map<string, { path: string; method: string; op: Json }>();
    for (const [path, methods] of Object.entries(paths)) for (const [method, op] of Object.entries(methods)) byId.set(String(op['operationId']), { path, method, op });
    const versionOf = async (name: string) => Number(((await (await fetch(`${api.base}/flags/${name}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { flag: { version: number } }).flag.version);

    for (const id of ORDER) {
      const { path, method, op } = byId.get(id)!;
      const params = (op['parameters'] ?? []) as { name: string; in: string; required: boolean; schema: Json }[];
      const flag = id === 'listFlags' || id === 'getMe' ? '' : 'openapi_flag';
      let url = `${api.base}${path}`;
      const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}` };
      for (const p of params) {
        if (p.in === 'path') {
          expect(z.fromJSONSchema(p.schema as never).safeParse(flag).success, `${id} ${p.name}`).toBe(true);
          url = url.replace(`{${p.name}}`, flag);
        } else if (p.in === 'header' && p.name === 'If-Match') headers['if-match'] = `"${await versionOf(flag)}"`;
        else if (p.in === 'query') expect(p.required, `${id} query ${p.name} is optional`).toBe(false);
      }
      if (id === 'deleteFlag') {
        // Only a disabled flag may be deleted: turn it off first (a documented operation too).
        const off = await fetch(`${api.base}/flags/${flag}`, { method: 'PATCH', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ enabled: false }) });
        expect(off.status).toBe(200);
        headers['if-match'] = `"${await versionOf(flag)}"`;
      }
      let body: string | undefined;
      const requestBody = op['requestBody'] as { content: Record<string, { schema: Json }> } | undefined;
      if (requestBody) {
        const sample = BODIES[id];
        expect(z.fromJSONSchema(requestBody.content['application/json']!.schema as never).safeParse(sample).success, `${id}: body fixture fits the documented schema`).toBe(true);
        body = JSON.stringify(sample);
        headers['content-type'] = 'application/json';
      }
      const ac = new AbortController();
      const res = await fetch(url, { method: method.toUpperCase(), headers, ...(body ? { body } : {}), signal: ac.signal });
      const responses = op['responses'] as Record<string, { content?: Record<string, { schema: Json }> }>;
      expect(Object.keys(responses), `${id} answered ${res.status}`).toContain(String(res.status));
      expect(res.status, id).toBeLessThan(300);
      const documented = responses[String(res.status)]!;
      const type = (res.headers.get('content-type') ?? '').split(';')[0]!;
      if (!documented.content) {
        expect(await res.text(), id).toBe('');
        continue;
      }
      expect(Object.keys(documented.content), id).toContain(type);
      if (type === 'application/json') {
        const json = (await res.json()) as unknown;
        const check = z.fromJSONSchema(documented.content[type]!.schema as never).safeParse(json);
        expect(check.success ? [] : check.error.issues, `${id}: answer fits the documented schema`).toEqual([]);
      } else {
        ac.abort();
      }
    }
  });
});
