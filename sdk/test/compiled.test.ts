import { describe, expect, test } from 'vitest';
import { bucket, compileFlag, compiledBucket, evaluate, evaluateCompiled, isCompiledOn } from '../src/index.ts';
import type { FlagDefinition } from '../src/index.ts';

// Ids with ASCII, 2-, 3- and 4-byte UTF-8 and a lone surrogate, at every length mod 4.
function ids(): string[] {
  const out = ['', 'a', 'ab', 'abc', 'abcd', 'ü', 'üñî', '日本語ユーザー', '😀', 'x😀y', '\ud800', 'a\udc00b'];
  let seed = 7;
  for (let i = 0; i < 2000; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    const len = seed % 13;
    let s = '';
    for (let j = 0; j < len; j++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      const pick = seed % 5;
      s += pick === 0 ? String.fromCharCode(0x61 + (seed % 26)) : pick === 1 ? String.fromCharCode(0xe0 + (seed % 30)) : pick === 2 ? String.fromCharCode(0x4e00 + (seed % 500)) : pick === 3 ? '🚀' : String(seed % 10);
    }
    out.push(s);
  }
  return out;
}

describe('compileFlag / evaluateCompiled', () => {
  test('bucket is bit-exact with bucket() for prefixes of every length', () => {
    for (const group of ['a', 'ab', 'abc', 'ai_rollout', 'grüße', 'x'.repeat(63)]) {
      const compiled = compileFlag({ name: 'f', enabled: true, rolloutPercentage: 50, bucketGroup: group });
      for (const id of ids()) expect(compiledBucket(compiled, id)).toBe(bucket(group, id));
    }
  });

  test('evaluation matches evaluate() for valid, disabled, targeted and malformed definitions', () => {
    const defs: FlagDefinition[] = [
      { name: 'ai_beta_users', enabled: true, rolloutPercentage: 50, bucketGroup: 'ai_rollout' },
      { name: 'zero', enabled: true, rolloutPercentage: 0 },
      { name: 'all', enabled: true, rolloutPercentage: 100 },
      { name: 'off', enabled: false, rolloutPercentage: 100 },
      { name: 'tgt', enabled: true, rolloutPercentage: 0, targets: ['abc', 'ü'] },
      { name: 'bad_pct', enabled: true, rolloutPercentage: 50.5, targets: ['abc'] },
      { name: 'bad_pct_off', enabled: false, rolloutPercentage: -1 },
      { name: 42 } as unknown as FlagDefinition,
    ];
    for (const def of defs) {
      const compiled = compileFlag(def);
      for (const id of [...ids().slice(0, 300), 7 as unknown as string]) {
        const expected = evaluate(def, id);
        expect(evaluateCompiled(compiled, id)).toEqual(expected);
        expect(isCompiledOn(compiled, id)).toBe(expected.value);
      }
    }
    expect(evaluateCompiled(undefined, 'u').reason).toBe('FLAG_NOT_FOUND');
  });
});
