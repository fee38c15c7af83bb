import { expect, test } from 'vitest';
import { murmur3_32 } from '../src/index.ts';
// Reference values of MurmurHash3 x86_32 (from the algorithm's published test suites).
test('murmur3_32 matches the reference implementation, multi-byte UTF-8 included', () => {
  expect(murmur3_32('', 0)).toBe(0);
  expect(murmur3_32('', 1)).toBe(0x514e28b7);
  expect(murmur3_32('Hello, world!', 1234)).toBe(0xfaf6cdb3);
  expect(murmur3_32('The quick brown fox jumps over the lazy dog', 0x9747b28c)).toBe(0x2fa826cd);
  expect(murmur3_32('ππππππππ', 0x9747b28c)).toBe(0xd58063c1);
});
