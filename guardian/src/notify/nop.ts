/**
 * A notifier that accepts every message and does nothing (deployments without a channel,
 * dry demos).
 */
import type { Channel, NotificationMessage, Notifier } from './types.ts';

/**
 * Accepts and drops every message.
 *
 * @example
 * const notifiers = new Map([['slack', new NopNotifier('slack')]]);
 */
export class NopNotifier implements Notifier {
  readonly channel: Channel;

  constructor(channel: Channel) {
    this.channel = channel;
  }

  async send(_message: NotificationMessage, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
  }
}
