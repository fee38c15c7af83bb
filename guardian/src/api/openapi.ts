/**
 * The admin API's operations as data (method, path, role, the zod schemas of params, query and
 * body, the answers) and the OpenAPI 3.1 document generated from them with `z.toJSONSchema`.
 * app.ts registers each operation's handler from the same object, so the document cannot drift
 * from what is validated.
 */
import { z } from 'zod';

import type { Role } from './auth.ts';
import { ErrorBody } from './schemas.ts';

/** One documented answer of an operation. */
export interface ResponseSpec {
  readonly description: string;
  /** JSON body schema; absent for 204. */
  readonly schema?: z.ZodType;
  /** Other media types the same status may answer with (text/csv, text/event-stream). */
  readonly alsoAs?: readonly string[];
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * One operation, as documented and as validated.
 *
 * @example
 * const op: OperationSpec = { method: 'get', path: '/me', operationId: 'me', summary: 'Who am I', role: 'viewer', responses: { 200: { description: 'you', schema: MeOut } } };
 */
export interface OperationSpec {
  readonly method: 'get' | 'post' | 'patch' | 'delete';
  /** OpenAPI style, relative to /api/v1: `/flags/{name}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly description?: string;
  /** Least role needed; null = no authentication. */
  readonly role: Role | null;
  readonly params?: z.ZodType;
  readonly query?: z.ZodType;
  readonly body?: z.ZodType;
  /** `If-Match: "<version>"` required (428 without). */
  readonly ifMatch?: boolean;
  readonly responses: Readonly<Record<number, ResponseSpec>>;
}

type Json = Record<string, unknown>;

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses) of a zod schema, without its `$schema` line. */
export function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Json {
  const out = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as Json;
  delete out['$schema'];
  return out;
}

/** OpenAPI parameters of an object schema (`in`: path or query). */
function parameters(schema: z.ZodType | undefined, where: 'path' | 'query'): Json[] {
  if (!schema) return [];
  const js = jsonSchema(schema, 'input');
  const props = (js['properties'] ?? {}) as Record<string, Json>;
  const required = new Set((js['required'] ?? []) as string[]);
  return Object.entries(props).map(([name, s]) => ({ name, in: where, required: where === 'path' || required.has(name), schema: s }));
}

const COMMON_ERRORS: Readonly<Record<number, string>> = {
  400: 'Bad request: the body, query or a header is not valid (`field` names it, `issues` lists every problem).',
  401: 'No or bad credentials.',
  403: 'The caller lacks the role this needs.',
  429: 'Too many failed authentications from this address (Retry-After).',
  500: 'Internal error.',
  503: 'The database is unreachable.',
};

/**
 * The OpenAPI 3.1 document of `ops`, served at `/api/v1/openapi.json`.
 *
 * @example
 * const doc = openApiDocument(operations, { version: '0.1.0' });
 */
export function openApiDocument(ops: readonly OperationSpec[], info: { version: string; serverUrl?: string }): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const op of ops) {
    const responses: Record<string, Json> = {};
    for (const [status, r] of Object.entries(op.responses)) {
      const content: Json = {};
      if (r.schema) content['application/json'] = { schema: jsonSchema(r.schema, 'output') };
      for (const type of r.alsoAs ?? []) content[type] = { schema: { type: 'string' } };
      responses[status] = {
        description: r.description,
        ...(Object.keys(content).length ? { content } : {}),
        ...(r.headers ? { headers: Object.fromEntries(Object.entries(r.headers).map(([h, d]) => [h, { description: d, schema: { type: 'string' } }])) } : {}),
      };
    }
    const errors = op.role === null ? { 400: COMMON_ERRORS[400], 500: COMMON_ERRORS[500] } : COMMON_ERRORS;
    for (const [status, description] of Object.entries(errors)) {
      if (responses[status] || (status === '400' && !op.params && !op.query && !op.body && !op.ifMatch)) continue;
      responses[status] = { description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    }
    const params = [...parameters(op.params, 'path'), ...parameters(op.query, 'query')];
    if (op.ifMatch) params.push({ name: 'If-Match', in: 'header', required: true, description: 'The version the change is based on: "<version>" (the ETag of the flag).', schema: { type: 'string' } });
    paths[op.path] ??= {};
    paths[op.path]![op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      ...(op.role === null ? { security: [] } : {}),
      ...(op.role !== null ? { 'x-required-role': op.role } : {}),
      ...(params.length ? { parameters: params } : {}),
      ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(op.body, 'input') } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Rollback Guardian admin API',
      version: info.version,
      description:
        'Flags, targets, rollbacks, events, audit, usage and guardian status. Roles: viewer (read) < editor (change flags and targets, roll back, restore) < admin (create and delete flags). Writes need If-Match with the flag version; a stale one gets 412 with the current flag.',
    },
    servers: [{ url: info.serverUrl ?? '/api/v1' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'GUARDIAN_ADMIN_TOKEN or a Supabase Auth access token (role in app_metadata.guardian_role).' } },
      schemas: { Error: jsonSchema(ErrorBody, 'output') },
    },
    paths,
  };
}
