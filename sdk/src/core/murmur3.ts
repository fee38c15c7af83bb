// MurmurHash3 x86_32 over the UTF-8 bytes of a JavaScript string, without allocating.
//
// JavaScript strings are UTF-16; the evaluation contract (DESIGN.md §4) hashes UTF-8 bytes,
// exactly as Unleash and PostgreSQL's `convert_to(text, 'UTF8')` do. ASCII (what user ids almost
// always are) is read four char codes at a time straight into one 32-bit block; anything else is
// encoded on the fly, byte by byte, exactly as TextEncoder does (a surrogate pair becomes 4 bytes,
// a lone surrogate U+FFFD). No buffer, closure or object is built per call.

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mix(h: number, word: number): number {
  let k = Math.imul(word, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

// State of the byte-at-a-time encoder (the non-ASCII path): module-level, so it allocates nothing.
let sH = 0;
let sWord = 0;
let sFilled = 0;
let sLength = 0;

function push(byte: number): void {
  sWord |= byte << (sFilled << 3);
  sLength++;
  if (++sFilled === 4) {
    sH = mix(sH, sWord);
    sWord = 0;
    sFilled = 0;
  }
}

// Feeds the UTF-8 encoding of text[from..] into the module-level state.
function feedUtf8(text: string, from: number): void {
  const n = text.length;
  for (let i = from; i < n; i++) {
    let c = text.charCodeAt(i);
    if (c < 0x80) {
      push(c);
    } else if (c < 0x800) {
      push(0xc0 | (c >> 6));
      push(0x80 | (c & 0x3f));
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const next = i + 1 < n ? text.charCodeAt(i + 1) : 0;
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
  }
}

/**
 * The MurmurHash3 state after some bytes: the running hash, up to 3 pending bytes (little-endian
 * in `word`, `filled` of them) and the total byte count.
 *
 * @internal
 */
export interface Murmur3State {
  readonly h: number;
  readonly word: number;
  readonly filled: number;
  readonly length: number;
}

/**
 * The state after hashing the UTF-8 bytes of `text` from `seed`, before finalisation (what a
 * compiled flag keeps for its `bucket_group + ":"` prefix).
 *
 * @internal
 */
export function murmur3State(text: string, seed = 0): Murmur3State {
  sH = seed | 0;
  sWord = 0;
  sFilled = 0;
  sLength = 0;
  feedUtf8(text, 0);
  return { h: sH, word: sWord, filled: sFilled, length: sLength };
}

/**
 * Continues from a state (see {@link murmur3State}) with the UTF-8 bytes of `text` and returns the
 * final hash as a SIGNED 32-bit integer: `murmur3Continue(0, 0, 0, 0, s) >>> 0` is
 * `murmur3_32(s, 0)`. Signed on purpose: an int32 return value is a small integer for V8, while an
 * unsigned one above 2^31 would be boxed in a heap number on every call that is not inlined.
 *
 * @internal
 */
export function murmur3Continue(h: number, word: number, filled: number, length: number, text: string): number {
  // int32 from here on (else V8 keeps the loop variables as tagged numbers).
  h |= 0;
  word |= 0;
  filled |= 0;
  length |= 0;
  const n = text.length;
  let i = 0;
  // ASCII fast path, four chars = four bytes = one block at a time. With `filled` bytes pending
  // from the prefix, each block is the pending bytes plus the low bytes of the four new ones and
  // the high bytes become the new pending ones.
  if (filled === 0) {
    for (; i + 3 < n; i += 4) {
      const c0 = text.charCodeAt(i);
      const c1 = text.charCodeAt(i + 1);
      const c2 = text.charCodeAt(i + 2);
      const c3 = text.charCodeAt(i + 3);
      if ((c0 | c1 | c2 | c3) > 0x7f) break;
      h = mix(h, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
    }
  } else {
    const up = filled << 3;
    const down = 32 - up;
    for (; i + 3 < n; i += 4) {
      const c0 = text.charCodeAt(i);
      const c1 = text.charCodeAt(i + 1);
      const c2 = text.charCodeAt(i + 2);
      const c3 = text.charCodeAt(i + 3);
      if ((c0 | c1 | c2 | c3) > 0x7f) break;
      const w = c0 | (c1 << 8) | (c2 << 16) | (c3 << 24);
      h = mix(h, word | (w << up));
      // `>>`, not `>>>`: the same bits here (w < 2^31, all four bytes are ASCII) but an int32 for
      // V8, where `>>>` would make `word` a float64 for the rest of the function.
      word = w >> down;
    }
  }
  length += i;
  for (; i < n; i++) {
    const c = text.charCodeAt(i);
    // Not ASCII from here on: the exact UTF-8 encoder, in a function of its own so that this one
    // keeps every variable an int32.
    if (c > 0x7f) return continueUtf8(h, word, filled, length, text, i);
    word |= c << (filled << 3);
    length++;
    if (++filled === 4) {
      h = mix(h, word);
      word = 0;
      filled = 0;
    }
  }
  return finish(h, word, filled, length);
}

function continueUtf8(h: number, word: number, filled: number, length: number, text: string, from: number): number {
  sH = h;
  sWord = word;
  sFilled = filled;
  sLength = length;
  feedUtf8(text, from);
  return finish(sH, sWord, sFilled, sLength);
}

// The tail block and the final avalanche; a signed int32 (see murmur3Continue).
function finish(h: number, word: number, filled: number, length: number): number {
  if (filled !== 0) {
    let k = Math.imul(word, C1);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, C2);
  }
  h ^= length;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}

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
  return murmur3Continue(seed | 0, 0, 0, 0, text) >>> 0;
}
