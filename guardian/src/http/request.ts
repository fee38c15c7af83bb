/**
 * What the guardian's authenticated JSON routes (`/v1/exposures`, `/ofrep/…`) share: reading a
 * bounded body, naming a JSON value's type in an error, and checking a secret key in constant time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

/** A body read within its limit, or `{ ok: false }` when it was larger. */
export type BodyResult = { ok: true; text: string } | { ok: false };

/**
 * Reads a request's body into ONE buffer of at most `limit` bytes (the declared
 * `Content-Length` when there is one, else grown up to `limit`), decoding it as UTF-8 at the end;
 * beyond the limit it stops reading (the stream is cancelled) and answers `{ ok: false }`.
 * Rejects when the sender goes away before the body ends.
 *
 * @example
 * const body = await readBodyText(c.req.raw, 65_536);
 * if (!body.ok) throw new HttpError('payload_too_large', 'at most 64 KB');
 */
export async function readBodyText(req: Request, limit: number): Promise<BodyResult> {
  const stream = req.body;
  if (stream === null) return { ok: true, text: '' };
  const declared = Number(req.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(declared) && declared > limit) {
    await stream.cancel().catch(() => {});
    return { ok: false };
  }
  let buffer = Buffer.allocUnsafe(Number.isFinite(declared) && declared >= 0 ? declared : Math.min(limit, 16_384));
  let size = 0;
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (size + value.length > limit) {
        await reader.cancel().catch(() => {});
        return { ok: false };
      }
      if (size + value.length > buffer.length) {
        const grown = Buffer.allocUnsafe(Math.min(limit, Math.max(size + value.length, buffer.length * 2)));
        buffer.copy(grown, 0, 0, size);
        buffer = grown;
      }
      buffer.set(value, size);
      size += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  return { ok: true, text: buffer.toString('utf8', 0, size) };
}

/**
 * The media type of a request (`application/json` of `application/json; charset=utf-8`), lower case, '' when none.
 *
 * @example
 * if (mediaType(c.req.header('content-type')) !== 'application/json') throw new HttpError('unsupported_media_type', '…');
 */
export function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
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
