/**
 * What the guardian's authenticated JSON routes (`/v1/exposures`, `/ofrep/…`) share: reading a
 * bounded body, naming a JSON value's type in an error, and checking a secret key in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** A body read within its limit, or `{ ok: false }` when it was larger. */
export type BodyResult = { ok: true; text: string } | { ok: false };

/**
 * Reads the body up to `limit` bytes; beyond it, stops collecting (the rest is drained) and
 * answers `{ ok: false }`. Rejects when the sender goes away before the body ends, so nothing
 * waits forever.
 *
 * @example
 * const body = await readBody(req, 65_536);
 * if (!body.ok) return tooLarge();
 */
export function readBody(req: IncomingMessage, limit: number): Promise<BodyResult> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    let ended = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size > limit) {
        over = true;
        chunks.length = 0;
        resolve({ ok: false });
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      ended = true;
      if (!over) resolve({ ok: true, text: Buffer.concat(chunks).toString('utf8') });
    });
    req.on('error', reject);
    req.on('close', () => {
      if (!ended && !over) reject(new Error('the request closed before its body ended'));
    });
  });
}

/**
 * A JSON value's kind for error messages: `null`, `array`, or its `typeof`.
 *
 * @example
 * typeName([1]); // 'array'
 */
export function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

/**
 * A secret key as the digest routes compare against (SHA-256, so the comparison takes the same
 * time whatever the lengths).
 *
 * @example
 * const expected = keyDigest(config.ingestKey);
 */
export function keyDigest(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/**
 * Whether `given` is the key behind `expected` ({@link keyDigest}), in constant time.
 *
 * @example
 * if (!sameKey(bearerToken, expected)) return unauthorized();
 */
export function sameKey(given: string, expected: Buffer): boolean {
  return timingSafeEqual(keyDigest(given), expected);
}
