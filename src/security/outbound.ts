/**
 * Outbound URL policy: an agent's `base_url` may not reach loopback, private or link-local
 * addresses (a server-side request forgery guard), unless its `host:port` is allowed.
 *
 * The check runs twice: when the agent is saved (every address the name resolves to), and on
 * every connection (the address actually dialled), so a DNS answer that changes after the first
 * check (rebinding) is still refused.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { Agent, buildConnector } from 'undici';
import { EnsembleError } from '../core/index.ts';
import { requestFetch } from './request-fetch.ts';

const BLOCKED = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  BLOCKED.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8],
  ['::', 96], // IPv4-compatible (::a.b.c.d)
  ['64:ff9b::', 96], // NAT64: reaches IPv4 addresses through a translator
  ['2002::', 16], // 6to4: embeds an IPv4 address
] as const) {
  BLOCKED.addSubnet(network, prefix, 'ipv6');
}

/** Whether an IP address is loopback, private, link-local or otherwise not a public host. */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return BLOCKED.check(address, 'ipv4');
  if (family === 6) {
    const mapped = address.toLowerCase().match(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/);
    if (mapped?.[1]) return BLOCKED.check(mapped[1], 'ipv4');
    return BLOCKED.check(address, 'ipv6');
  }
  return true;
}

export class OutboundPolicy {
  readonly #allowed: ReadonlySet<string>;
  readonly #lookup: typeof dnsLookup;

  /** `allowedHosts`: `host:port` entries (ENSEMBLE_ALLOWED_PRIVATE_HOSTS) exempt from the check. */
  constructor(allowedHosts: readonly string[], lookup: typeof dnsLookup = dnsLookup) {
    this.#allowed = new Set(allowedHosts.map((entry) => entry.trim().toLowerCase()).filter(Boolean));
    this.#lookup = lookup;
  }

  isAllowedHost(hostname: string, port: number): boolean {
    const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
    return this.#allowed.has(`${host}:${port}`) || this.#allowed.has(`[${host}]:${port}`);
  }

  /** Checks a base URL when an agent is saved. Throws `invalid_request` naming `config.base_url`. */
  async checkUrl(raw: string): Promise<void> {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw refusal(raw, 'is not a valid URL');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refusal(raw, 'must use http or https');
    if (url.username || url.password) throw refusal(raw, 'must not carry credentials');
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    if (this.isAllowedHost(host, port)) return;
    const addresses = isIP(host) ? [host] : await this.#resolve(host).catch(() => {
      throw refusal(raw, `has a host name that does not resolve (${host})`);
    });
    const blocked = addresses.find(isPrivateAddress);
    if (blocked) {
      throw refusal(raw, `resolves to a private, loopback or link-local address (${blocked}); allow it with ENSEMBLE_ALLOWED_PRIVATE_HOSTS=${host}:${port}`);
    }
  }

  /**
   * A fetch whose every connection is checked against the policy at dial time. Vendor packages
   * and health checks use it, so no request leaves for a forbidden address.
   */
  createFetch(): typeof fetch {
    const open = buildConnector({});
    const guarded = buildConnector({ lookup: this.#checkedLookup as unknown as LookupFunction });
    const agent = new Agent({
      connect: (options, callback) => {
        const port = Number(options.port || (options.protocol === 'https:' ? 443 : 80));
        const host = options.hostname.replace(/^\[|\]$/g, '');
        if (this.isAllowedHost(host, port)) return open(options, callback);
        // A literal IP is dialled without a lookup, so it is checked here.
        if (isIP(host) && isPrivateAddress(host)) {
          callback(new OutboundRefusedError(host), null);
          return;
        }
        return guarded(options, callback);
      },
    });
    return requestFetch(agent);
  }

  #checkedLookup = (hostname: string, options: object, callback: (...args: unknown[]) => void): void => {
    this.#lookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) return callback(error);
      const blocked = addresses.find((a) => isPrivateAddress(a.address));
      if (blocked) return callback(new OutboundRefusedError(blocked.address));
      const wantsAll = (options as { all?: boolean }).all === true;
      const first = addresses[0];
      if (wantsAll) return callback(null, addresses);
      if (!first) return callback(new Error(`No address for ${hostname}`));
      return callback(null, first.address, first.family);
    });
  };

  #resolve(host: string): Promise<string[]> {
    return new Promise((resolve, reject) => {
      this.#lookup(host, { all: true }, (error, addresses: LookupAddress[]) => {
        if (error) reject(error);
        else resolve(addresses.map((a) => a.address));
      });
    });
  }
}

/** A connection refused by the policy at dial time. */
export class OutboundRefusedError extends Error {
  readonly code = 'EOUTBOUND_REFUSED';
  constructor(address: string) {
    super(`Outbound connection to ${address} refused: private, loopback or link-local address`);
    this.name = 'OutboundRefusedError';
  }
}

function refusal(url: string, why: string): EnsembleError {
  return new EnsembleError('invalid_request', `config.base_url ${why}`, [{ path: 'config.base_url', message: `${url} ${why}` }]);
}
