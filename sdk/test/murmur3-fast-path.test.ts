// The hash's fast path (ASCII read four char codes at a time, a cached prefix state carrying 0..3
// pending bytes, the exact UTF-8 encoder taking over at the first non-ASCII char) against a
// reference that shares no code with it: TextEncoder's bytes (lone surrogates → U+FFFD) fed to a
// byte-wise MurmurHash3 written here. Random strings are built to hit every transition: ASCII runs
// of every length around the 4-byte blocks, 2/3/4-byte characters, surrogate pairs and lone or
// reversed surrogates, at every prefix alignment.
import { describe, expect, test } from 'vitest';
import { bucket, compileFlag, compiledBucket, createServerClient, evaluateCompiled, isCompiledOn, murmur3_32 } from '../src/index.ts';
import type { FlagRecord } from '../src/index.ts';
import { rng } from '../../guardian/src/random.ts';

const encoder = new TextEncoder();

/** MurmurHash3 x86_32 over bytes, the textbook way. */
function referenceMurmur3(bytes: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed | 0;
  const blocks = bytes.length >> 2;
  for (let b = 0; b < blocks; b++) {
    const i = b << 2;
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = blocks << 2;
  if (bytes.length > tail) {
    // The 1..3 tail bytes, little-endian.
    let k = 0;
    for (let j = bytes.length - 1; j >= tail; j--) k = (k << 8) | bytes[j]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= bytes.length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const referenceBucket = (group: string, userId: string): number => (referenceMurmur3(encoder.encode(`${group}:${userId}`)) % 100) + 1;

/** One random piece: mostly ASCII runs (the fast path), then every other kind of UTF-16. */
function piece(next: () => number): string {
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  switch (int(0, 9)) {
    case 0:
    case 1:
    case 2: {
      // An ASCII run of 0..9 chars, control characters and DEL included.
      let s = '';
      for (let n = int(0, 9); n > 0; n--) s += String.fromCharCode(int(0, 0x7f));
      return s;
    }
    case 3:
      return String.fromCharCode(int(0x80, 0x7ff)); // 2 bytes
    case 4:
      return String.fromCharCode(int(0x800, 0xd7ff)); // 3 bytes
    case 5:
      return String.fromCharCode(int(0xe000, 0xffff)); // 3 bytes, U+FFFF included
    case 6:
      return String.fromCodePoint(int(0x10000, 0x10ffff)); // a surrogate pair, 4 bytes
    case 7:
      return String.fromCharCode(int(0xd800, 0xdbff)); // a lone high surrogate (unless a low one follows)
    case 8:
      return String.fromCharCode(int(0xdc00, 0xdfff)); // a lone low surrogate
    default:
      return String.fromCharCode(int(0xdc00, 0xdfff), int(0xd800, 0xdbff)); // a reversed pair: two lone ones
  }
}

function randomString(next: () => number, maxPieces: number): string {
  let s = '';
  for (let n = Math.floor(next() * (maxPieces + 1)); n > 0; n--) s += piece(next);
  return s;
}

// Bucket groups whose `group + ":"` is 1..8 bytes long (0..3 bytes pending after the prefix), and
// non-ASCII ones that leave high bytes pending.
const GROUPS = ['a', 'ab', 'abc', 'abcd', 'ai_rollout', 'flag_1', 'flag_12', 'flag_123', 'grüße', '日本', '😀', 'é', 'x\ud800'];

describe('murmur3 fast path vs TextEncoder + byte-wise reference', () => {
  test('murmur3_32 on 20,000 random Unicode strings (lone surrogates included), several seeds', () => {
    const next = rng(2024);
    for (let i = 0; i < 20_000; i++) {
      const s = randomString(next, 8);
      const seed = i % 4 === 0 ? 0 : Math.floor(next() * 0x100000000);
      expect(murmur3_32(s, seed), JSON.stringify(s)).toBe(referenceMurmur3(encoder.encode(s), seed));
    }
  });

  test('every ASCII string length 0..40 (each block/tail split), with a non-ASCII char at every position', () => {
    const ascii = 'user-0123456789abcdefghijklmnopqrstuvwxyz';
    for (let len = 0; len <= 40; len++) {
      const s = ascii.slice(0, len);
      expect(murmur3_32(s)).toBe(referenceMurmur3(encoder.encode(s)));
      for (let at = 0; at <= len; at++) {
        for (const odd of ['é', '€', '😀', '\ud83d', '\ude00']) {
          const t = s.slice(0, at) + odd + s.slice(at);
          expect(murmur3_32(t), JSON.stringify(t)).toBe(referenceMurmur3(encoder.encode(t)));
        }
      }
    }
  });

  test('compiled flags (cached prefix state at every alignment) on random ids: bucket, evaluation, isEnabled', () => {
    const next = rng(99);
    const ids = Array.from({ length: 3000 }, () => randomString(next, 6));
    for (const group of GROUPS) {
      const def = { name: 'f', enabled: true, rolloutPercentage: 37, bucketGroup: group };
      const compiled = compileFlag(def);
      for (const id of ids) {
        const expected = referenceBucket(group, id);
        expect(compiledBucket(compiled, id), `${group} / ${JSON.stringify(id)}`).toBe(expected);
        expect(bucket(group, id)).toBe(expected);
        // The empty id hashes like any other, but is no user: off with reason ERROR.
        const on = id !== '' && expected <= 37;
        expect(isCompiledOn(compiled, id)).toBe(on);
        expect(evaluateCompiled(compiled, id)).toEqual(id === '' ? { value: false, reason: 'ERROR', errorCode: 'INVALID_USER_ID' } : { value: on, reason: 'SPLIT', bucket: expected });
      }
    }
  });

  test('server mode isEnabled agrees with the reference for every group alignment', async () => {
    const records: FlagRecord[] = GROUPS.map((group, i) => ({
      name: `flag_${i}`, enabled: true, rolloutPercentage: 1 + ((i * 23) % 99), bucketGroup: group, version: 1, guardState: 'watching', rollbackMessage: null,
    }));
    const client = createServerClient({ transport: { loadAll: async () => records } });
    await client.ready();
    const next = rng(5);
    for (let i = 0; i < 5000; i++) {
      const record = records[i % records.length]!;
      const id = randomString(next, 5);
      expect(client.isEnabled(record.name, id), `${record.bucketGroup} / ${JSON.stringify(id)}`).toBe(id !== '' && referenceBucket(record.bucketGroup!, id) <= record.rolloutPercentage);
    }
    await client.close();
  });

  test('the reference itself matches the published vectors', () => {
    expect(referenceMurmur3(encoder.encode(''), 1)).toBe(0x514e28b7);
    expect(referenceMurmur3(encoder.encode('Hello, world!'), 1234)).toBe(0xfaf6cdb3);
    expect(referenceMurmur3(encoder.encode('The quick brown fox jumps over the lazy dog'), 0x9747b28c)).toBe(0x2fa826cd);
    expect(referenceMurmur3(encoder.encode('ππππππππ'), 0x9747b28c)).toBe(0xd58063c1);
    // TextEncoder turns lone surrogates into U+FFFD, the behaviour the SDK must reproduce.
    expect([...encoder.encode('\ud800')]).toEqual([0xef, 0xbf, 0xbd]);
  });
});
