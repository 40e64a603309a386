import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { isPrivateAddress, Keyring, OutboundPolicy } from '../../src/security/index.ts';
import { constantTimeEqual, generateToken, hashToken } from '../../src/security/index.ts';

const k1 = `k1:${Buffer.alloc(32, 1).toString('base64')}`;
const k2 = `k2:${Buffer.alloc(32, 2).toString('base64')}`;

describe('Keyring', () => {
  it('seals and opens a secret for its context only', () => {
    const ring = Keyring.parse(k1);
    const sealed = ring.seal('sk-very-secret', 'agent:app1:agent1');
    expect(sealed).not.toContain('sk-very-secret');
    expect(ring.open(sealed, 'agent:app1:agent1')).toBe('sk-very-secret');
    expect(() => ring.open(sealed, 'agent:app1:agent2')).toThrow(/cannot be decrypted for this agent/);
    expect(() => ring.open(sealed, 'agent:app2:agent1')).toThrow(/cannot be decrypted/);
  });

  it('uses a fresh data key per secret', () => {
    const ring = Keyring.parse(k1);
    const a = JSON.parse(ring.seal('same', 'ctx'));
    const b = JSON.parse(ring.seal('same', 'ctx'));
    expect(a.dk).not.toBe(b.dk);
    expect(a.ct).not.toBe(b.ct);
  });

  it('detects tampering', () => {
    const ring = Keyring.parse(k1);
    const envelope = JSON.parse(ring.seal('secret', 'ctx'));
    const ct = Buffer.from(envelope.ct, 'base64');
    ct[ct.length - 1]! ^= 1;
    expect(() => ring.open(JSON.stringify({ ...envelope, ct: ct.toString('base64') }), 'ctx')).toThrow(/cannot be decrypted/);
    expect(() => ring.open('not json', 'ctx')).toThrow(/malformed/);
  });

  it('rewraps under the active key; the old key can then leave the keyring', () => {
    const old = Keyring.parse(k1);
    const sealed = old.seal('rotate-me', 'ctx');
    const both = Keyring.parse(`${k2},${k1}`);
    expect(both.open(sealed, 'ctx')).toBe('rotate-me');
    const rewrapped = both.rewrap(sealed, 'ctx');
    expect(Keyring.keyIdOf(rewrapped)).toBe('k2');
    expect(JSON.parse(rewrapped).ct).toBe(JSON.parse(sealed).ct);
    const onlyNew = Keyring.parse(k2);
    expect(onlyNew.open(rewrapped, 'ctx')).toBe('rotate-me');
    expect(() => onlyNew.open(sealed, 'ctx')).toThrow(/"k1" is not in the keyring/);
  });

  it('refuses malformed keyrings', () => {
    expect(() => Keyring.parse('')).toThrow(/at least one/);
    expect(() => Keyring.parse('nokey')).toThrow(/id:base64key/);
    expect(() => Keyring.parse(`k1:${Buffer.alloc(16).toString('base64')}`)).toThrow(/32 bytes/);
    expect(() => Keyring.parse(`${k1},${k1}`)).toThrow(/twice/);
  });
});

describe('tokens', () => {
  it('are 256-bit random, stored as hashes, compared in constant time', () => {
    const a = generateToken();
    const b = generateToken();
    expect(a).not.toBe(b);
    expect(Buffer.from(a.slice(4), 'base64url')).toHaveLength(32);
    expect(hashToken(a)).toMatch(/^[0-9a-f]{64}$/);
    expect(hashToken(a)).not.toContain(a);
    expect(constantTimeEqual(a, a)).toBe(true);
    expect(constantTimeEqual(a, b)).toBe(false);
    expect(constantTimeEqual(a, a.slice(0, 10))).toBe(false);
  });
});

describe('OutboundPolicy', () => {
  it.each([
    ['127.0.0.1', true],
    ['10.2.3.4', true],
    ['172.20.1.1', true],
    ['192.168.1.1', true],
    ['169.254.169.254', true],
    ['::1', true],
    ['fe80::1', true],
    ['fd00::5', true],
    ['::ffff:127.0.0.1', true],
    ['::127.0.0.1', true],
    ['64:ff9b::a00:1', true],
    ['2002:7f00:1::1', true],
    ['8.8.8.8', false],
    ['2606:4700::1111', false],
  ])('%s is private: %s', (address, expected) => {
    expect(isPrivateAddress(address)).toBe(expected);
  });

  it('refuses private targets at save time unless host:port is allowed', async () => {
    const policy = new OutboundPolicy(['127.0.0.1:11434', 'localhost:11434']);
    await expect(policy.checkUrl('http://127.0.0.1:11434')).resolves.toBeUndefined();
    await expect(policy.checkUrl('http://127.0.0.1:8080/v1')).rejects.toThrow(/private, loopback or link-local/);
    await expect(policy.checkUrl('http://169.254.169.254/latest')).rejects.toThrow(/private/);
    await expect(policy.checkUrl('ftp://example.com')).rejects.toThrow(/http or https/);
    await expect(policy.checkUrl('http://user:pw@example.com')).rejects.toThrow(/credentials/);
  });

  it('checks the address actually dialled, so a rebinding DNS answer is refused at connect time', async () => {
    const server = createServer((_req, res) => res.end('reached'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    let answers = 0;
    // The first answer (at save time) is public; later ones point at loopback.
    const lookup = ((_host: string, _options: unknown, callback: (...args: unknown[]) => void) => {
      answers++;
      callback(null, answers === 1 ? [{ address: '93.184.216.34', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
    }) as never;
    try {
      const policy = new OutboundPolicy([], lookup);
      await expect(policy.checkUrl(`http://rebind.example:${port}/`)).resolves.toBeUndefined();
      const guardedFetch = policy.createFetch();
      const error = await guardedFetch(`http://rebind.example:${port}/`).catch((e: unknown) => e);
      expect(String((error as Error).cause ?? error)).toMatch(/refused: private, loopback or link-local/);
      const literal = await guardedFetch(`http://127.0.0.1:${port}/`).catch((e: unknown) => e);
      expect(String((literal as Error).cause ?? literal)).toMatch(/refused/);

      const allowed = new OutboundPolicy([`127.0.0.1:${port}`]).createFetch();
      expect(await (await allowed(`http://127.0.0.1:${port}/`)).text()).toBe('reached');
    } finally {
      server.close();
    }
  });
});
