import type { Storage } from '../storage/index.ts';
import type { AgentService } from './agents.ts';

export interface HealthMonitorOptions {
  /** Time between two checks of the same agent. Default 5 minutes. */
  intervalMs: number;
  /** Each round starts after intervalMs ± this fraction, so processes and agents spread out. Default 0.2. */
  jitter: number;
  /** Checks running at once. Default 4. */
  concurrency: number;
  onError?: (error: unknown) => void;
}

export const DEFAULT_HEALTH_MONITOR: HealthMonitorOptions = { intervalMs: 5 * 60_000, jitter: 0.2, concurrency: 4 };

/** Checks every active agent of every app on an interval and stores each agent's latest health. */
export class HealthMonitor {
  readonly #storage: Storage;
  readonly #agents: AgentService;
  readonly #options: HealthMonitorOptions;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<void> | undefined;
  #stopped = false;

  constructor(storage: Storage, agents: AgentService, options: Partial<HealthMonitorOptions> = {}) {
    this.#storage = storage;
    this.#agents = agents;
    this.#options = { ...DEFAULT_HEALTH_MONITOR, ...options };
  }

  start(): void {
    this.#stopped = false;
    this.#schedule();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#round;
  }

  /** One pass over every active agent, at most `concurrency` at a time. */
  async checkAll(): Promise<number> {
    const agents = await this.#storage.agents.listActive();
    let next = 0;
    const worker = async () => {
      while (next < agents.length && !this.#stopped) {
        const agent = agents[next++];
        if (!agent) break;
        try {
          await this.#agents.checkHealth(agent);
        } catch (error) {
          this.#options.onError?.(error);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.#options.concurrency, agents.length) }, worker));
    return agents.length;
  }

  #schedule(): void {
    if (this.#stopped) return;
    const spread = this.#options.intervalMs * this.#options.jitter;
    const delay = Math.max(0, this.#options.intervalMs - spread + Math.random() * 2 * spread);
    this.#timer = setTimeout(() => {
      this.#round = this.checkAll()
        .then(() => undefined)
        .catch((error: unknown) => this.#options.onError?.(error))
        .finally(() => this.#schedule());
    }, delay);
    this.#timer.unref();
  }
}
