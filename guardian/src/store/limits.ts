/**
 * Length limits of the text people put into flags and events, in one place (the CLI, the admin
 * API and error messages use them), and the rule that such text never carries control
 * characters (a terminal or a log viewer must never receive raw escape sequences from data).
 *
 * | field                      | limit (characters)                          |
 * |----------------------------|---------------------------------------------|
 * | target user id             | 1..{@link MAX_USER_ID_LENGTH} (SQL CHECK too) |
 * | rollback/restore reason    | {@link MAX_REASON_LENGTH}                   |
 * | rollback message for users | {@link MAX_MESSAGE_LENGTH}                  |
 * | actor                      | {@link MAX_ACTOR_LENGTH}                    |
 */
import { GuardianError } from '../errors.ts';

/** Longest target user id (the `flag_targets_user_id_not_empty` CHECK: 1..1024). */
export const MAX_USER_ID_LENGTH = 1024;
/** Longest reason of a rollback or restore. */
export const MAX_REASON_LENGTH = 1000;
/** Longest rollback message shown to users. */
export const MAX_MESSAGE_LENGTH = 500;
/** Longest actor name. */
export const MAX_ACTOR_LENGTH = 200;

/** C0 controls (tab and newline too: these are one-line fields), DEL, C1 controls, and bidi overrides. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

/**
 * Checks one text field: not longer than `max`, no control characters. Throws `BAD_ARGUMENT`
 * naming the field (`what`), e.g. "--add-target: user id longer than 1024 characters (got 1500)".
 *
 * @example
 * checkText('--reason', 'reason', reason, MAX_REASON_LENGTH);
 */
export function checkText(what: string, noun: string, value: string, max: number): void {
  const problem = textProblem(noun, value, max);
  if (problem !== undefined) throw new GuardianError('BAD_ARGUMENT', `${what}: ${problem}`);
}

/**
 * What is wrong with one text field (longer than `max` characters, or a control character), or
 * `undefined` when it is fine: the rule of {@link checkText} for callers that collect problems
 * (the rules file's `rollback_message`).
 *
 * @example
 * textProblem('message', 'Back soon\u0007', MAX_MESSAGE_LENGTH); // 'message contains the control character U+0007 at position 10; use plain text'
 */
export function textProblem(noun: string, value: string, max: number): string | undefined {
  const length = [...value].length;
  if (length > max) return `${noun} longer than ${max} characters (got ${length})`;
  const bad = CONTROL.exec(value);
  if (bad) {
    const code = bad[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    return `${noun} contains the control character U+${code} at position ${[...value.slice(0, bad.index)].length + 1}; use plain text`;
  }
  return undefined;
}

/**
 * Text from the database made safe for a terminal: control characters (escape sequences
 * included) are shown as `\u{1b}` instead of being sent raw.
 *
 * @example
 * printable('ok\u001b[2J'); // 'ok\\u{1b}[2J'
 */
export function printable(text: string): string {
  return text.replace(new RegExp(CONTROL.source, 'gu'), (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`);
}
