/**
 * An in-memory notifier for tests and the demo: records what it was sent and can be told to
 * fail the next N sends (or until told otherwise).
 */
import type { Channel, NotificationMessage, Notifier, NotifyFailureInfo } from './types.ts';
import { notifyFailure } from './types.ts';

/**
 * Records messages; `failNext(n)` makes the next n sends throw `NOTIFY_FAILED`.
 *
 * @example
 * const slack = new MemoryNotifier('slack');
 * slack.failNext(2);
 * // ... run the worker ...
 * expect(slack.sent).toHaveLength(1);
 */
export class MemoryNotifier implements Notifier {
  readonly channel: Channel;
  /** Every message acknowledged, in order. */
  readonly sent: NotificationMessage[] = [];
  /** Every send call, failed ones included. */
  calls = 0;
  #failures = 0;
  #failure: Omit<NotifyFailureInfo, 'channel'> = { retryable: true };

  constructor(channel: Channel) {
    this.channel = channel;
  }

  /** Fails the next `count` sends (`Infinity`: until `failNext(0)`). */
  failNext(count: number, info: Omit<NotifyFailureInfo, 'channel'> = { retryable: true }): void {
    this.#failures = count;
    this.#failure = info;
  }

  async send(message: NotificationMessage, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.calls += 1;
    if (this.#failures > 0) {
      this.#failures -= 1;
      throw notifyFailure(`${this.channel}: simulated failure`, { channel: this.channel, ...this.#failure });
    }
    this.sent.push(message);
  }
}
