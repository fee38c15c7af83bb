/**
 * MurmurHash3 x86_32 over the UTF-8 bytes of a JavaScript string, without allocating.
 *
 * JavaScript strings are UTF-16; the evaluation contract (DESIGN.md §4) hashes UTF-8 bytes,
 * exactly as Unleash and PostgreSQL's `convert_to(text, 'UTF8')` do. The string is encoded on
 * the fly (lone surrogates become U+FFFD, as TextEncoder does) and fed to the hash four bytes
 * at a time, so no buffer is built per evaluation.
 *
 * @example
 * murmur3_32('ai_rollout:user-42', 0); // an unsigned 32-bit integer
 */
export function murmur3_32(text: string, seed = 0): number {
  let h = seed >>> 0;
  let word = 0; // bytes waiting to form a 4-byte block, little-endian
  let filled = 0; // how many bytes `word` holds (0..3)
  let length = 0; // total bytes hashed

  const push = (byte: number): void => {
    word |= byte << (filled * 8);
    filled++;
    length++;
    if (filled === 4) {
      let k = Math.imul(word, 0xcc9e2d51);
      k = (k << 15) | (k >>> 17);
      k = Math.imul(k, 0x1b873593);
      h ^= k;
      h = (h << 13) | (h >>> 19);
      h = (Math.imul(h, 5) + 0xe6546b64) | 0;
      word = 0;
      filled = 0;
    }
  };

  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      push(c);
      continue;
    }
    if (c < 0x800) {
      push(0xc0 | (c >> 6));
      push(0x80 | (c & 0x3f));
      continue;
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
        push(0xf0 | (c >> 18));
        push(0x80 | ((c >> 12) & 0x3f));
        push(0x80 | ((c >> 6) & 0x3f));
        push(0x80 | (c & 0x3f));
        continue;
      }
      c = 0xfffd; // a lone surrogate encodes as the replacement character
    }
    push(0xe0 | (c >> 12));
    push(0x80 | ((c >> 6) & 0x3f));
    push(0x80 | (c & 0x3f));
  }

  if (filled > 0) {
    let k = Math.imul(word, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }

  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
