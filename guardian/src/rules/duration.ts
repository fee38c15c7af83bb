/**
 * Durations in rules files: a number followed by a unit, or several such parts, e.g. `30s`,
 * `10m`, `1h`, `24h`, `1h30m`. Units: `ms`, `s`, `m`, `h`, `d`.
 */

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const WHOLE = /^(?:\d+(?:ms|s|m|h|d))+$/;
const PART = /(\d+)(ms|s|m|h|d)/g;

/**
 * Parses a duration such as `30s`, `10m`, `1h` or `1h30m` to milliseconds. Returns `undefined`
 * when the text is not a duration (callers turn that into a problem naming the field).
 *
 * @example
 * parseDuration('10m'); // 600000
 * parseDuration('ten minutes'); // undefined
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (!WHOLE.test(trimmed)) return undefined;
  let total = 0;
  for (const match of trimmed.matchAll(PART)) {
    const amount = Number(match[1]);
    const unit = UNIT_MS[match[2] ?? ''];
    if (unit === undefined || !Number.isSafeInteger(amount)) return undefined;
    total += amount * unit;
  }
  return Number.isSafeInteger(total) ? total : undefined;
}

/**
 * Formats milliseconds as the shortest duration text (`600000` → `10m`), for messages and evidence.
 *
 * @example
 * formatDuration(90_000); // '1m30s'
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return `${ms}ms`;
  if (ms === 0) return '0s';
  let rest = Math.round(ms);
  let out = '';
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}
