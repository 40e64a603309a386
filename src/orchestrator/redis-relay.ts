import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import type { RunEventRecord } from '../storage/index.ts';
import type { EventBus } from './event-bus.ts';

const EVENTS = 'ensemble:run-events';
const CONTROL = 'ensemble:run-control';

export type ControlMessage = { type: 'cancel'; runId: string };

/**
 * Carries live run events and control messages between processes over Redis pub/sub. Events
 * published on one process's bus reach every other process's bus; a process ignores its own
 * messages. Pub/sub may drop messages while Redis is away: readers fill gaps from storage.
 */
export class RedisRelay {
  readonly #origin = randomUUID();
  readonly #publisher: Redis;
  readonly #subscriber: Redis;
  readonly #bus: EventBus;
  readonly #onControl: (message: ControlMessage) => void;

  constructor(redisUrl: string, bus: EventBus, onControl: (message: ControlMessage) => void) {
    this.#bus = bus;
    this.#onControl = onControl;
    this.#publisher = new Redis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    this.#subscriber = new Redis(redisUrl, { maxRetriesPerRequest: null });
    this.#publisher.on('error', () => {});
    this.#subscriber.on('error', () => {});
    void this.#subscriber.subscribe(EVENTS, CONTROL).catch(() => {});
    this.#subscriber.on('message', (channel: string, raw: string) => this.#receive(channel, raw));
  }

  /** Sends a local event to the other processes. */
  publishEvent(event: RunEventRecord): void {
    void this.#publisher.publish(EVENTS, JSON.stringify({ origin: this.#origin, event })).catch(() => {});
  }

  async sendControl(message: ControlMessage): Promise<void> {
    // Delivered to this process too: the cancel may concern a run executing here.
    await this.#publisher.publish(CONTROL, JSON.stringify({ origin: this.#origin, message })).catch(() => {});
  }

  #receive(channel: string, raw: string): void {
    try {
      const parsed = JSON.parse(raw) as { origin: string; event?: RunEventRecord; message?: ControlMessage };
      if (channel === CONTROL && parsed.message) this.#onControl(parsed.message);
      else if (channel === EVENTS && parsed.event && parsed.origin !== this.#origin) this.#bus.publish(parsed.event, { remote: true });
    } catch {
      // A malformed message is dropped; nothing depends on a single message.
    }
  }

  /** Whether Redis answers within a second. */
  async ping(): Promise<boolean> {
    try {
      const answer = await Promise.race([this.#publisher.ping(), new Promise<string>((resolve) => setTimeout(() => resolve('timeout'), 1000).unref())]);
      return answer === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.#publisher.disconnect();
    this.#subscriber.disconnect();
  }
}
