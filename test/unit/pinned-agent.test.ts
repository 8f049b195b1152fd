import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { LookupAddress } from 'node:dns';
import type { AddressInfo } from 'node:net';
import { test, type TestContext } from 'node:test';
import { request } from 'undici';
import { resolveAllowed, type HostResolver } from '../../src/shared/address-policy.js';
import { isRefusedAddress, pinnedAgent, pinnedLookup } from '../../src/shared/pinned-agent.js';

type Answer = { err: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number };

/** Call the lookup as net.connect does, in either form. */
function lookup(fn: ReturnType<typeof pinnedLookup>, host: string, options: { all?: boolean; family?: number }): Promise<Answer> {
  return new Promise((done) => fn(host, options, (err, address, family) => done({ err, address, family })));
}

const answers: Record<string, { address: string; family: number }[]> = {
  'hooks.example.test': [{ address: '93.184.216.34', family: 4 }, { address: '2606:2800:220:1::1', family: 6 }],
  'inside.example.test': [{ address: '93.184.216.34', family: 4 }, { address: '10.0.0.5', family: 4 }],
};
const resolver: HostResolver = async (host) => {
  const a = answers[host];
  if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
  return a;
};

test('the pinned lookup answers both call forms: { all: true } an array of { address, family }, otherwise (err, address, family)', async () => {
  const fn = pinnedLookup({ resolver });
  assert.deepEqual(await lookup(fn, 'hooks.example.test', { all: true }), {
    err: null,
    address: [{ address: '93.184.216.34', family: 4 }, { address: '2606:2800:220:1::1', family: 6 }],
    family: undefined,
  });
  assert.deepEqual(await lookup(fn, 'hooks.example.test', {}), { err: null, address: '93.184.216.34', family: 4 });
  // An asked-for family keeps only that family, in both forms.
  assert.deepEqual(await lookup(fn, 'hooks.example.test', { family: 6 }), { err: null, address: '2606:2800:220:1::1', family: 6 });
  assert.deepEqual(await lookup(fn, 'hooks.example.test', { all: true, family: 6 }), { err: null, address: [{ address: '2606:2800:220:1::1', family: 6 }], family: undefined });

  // Refusals and DNS failures are errors in both forms; a refusal is a RefusedAddress.
  for (const all of [true, false]) {
    const refused = await lookup(fn, 'inside.example.test', { all });
    assert.ok(isRefusedAddress(refused.err), `all=${all}: ${refused.err?.message}`);
    assert.equal(refused.err?.message, 'host inside.example.test resolves to 10.0.0.5, a private or loopback address');
    const gone = await lookup(fn, 'gone.example.test', { all });
    assert.equal(gone.err?.code, 'ENOTFOUND');
    assert.equal(isRefusedAddress(gone.err), undefined);
  }
});

async function localServer(t: TestContext): Promise<{ port: number; hits: string[] }> {
  const hits: string[] = [];
  const server: Server = createServer((req, res) => {
    hits.push(`${req.headers.host} ${req.url}`);
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return { port: (server.address() as AddressInfo).port, hits };
}

test('a request to a host *name* goes through the pinned agent (Node connects with { all: true })', async (t) => {
  const { port, hits } = await localServer(t);
  const local: HostResolver = async (host) => (host === 'hooks.example.test' ? [{ address: '127.0.0.1', family: 4 }] : []);
  const agent = pinnedAgent({ allowedHosts: ['hooks.example.test'], resolver: local }, { timeoutMs: 5000 });
  t.after(() => agent.close());
  const res = await request(`http://hooks.example.test:${port}/hook`, { dispatcher: agent });
  assert.equal(res.statusCode, 200);
  assert.equal(await res.body.text(), 'ok');
  assert.deepEqual(hits, [`hooks.example.test:${port} /hook`]);
});

test('what is checked is what is dialled: a name that passes a first check and then resolves to loopback is refused at connect', async (t) => {
  const { port, hits } = await localServer(t);
  let calls = 0;
  const rebinding: HostResolver = async () => (++calls === 1 ? [{ address: '93.184.216.34', family: 4 }] : [{ address: '127.0.0.1', family: 4 }]);
  const policy = { resolver: rebinding };
  const agent = pinnedAgent(policy, { timeoutMs: 5000 });
  t.after(() => agent.close());
  const url = new URL(`https://rebind.example.test:${port}/x`);
  assert.deepEqual(await resolveAllowed(url, policy, ['https:']), { address: '93.184.216.34', family: 4, all: [{ address: '93.184.216.34', family: 4 }] });
  const err = await request(`http://rebind.example.test:${port}/x`, { dispatcher: agent }).then(() => undefined, (e: unknown) => e);
  assert.equal(isRefusedAddress(err)?.message, 'host rebind.example.test resolves to 127.0.0.1, a private or loopback address');
  assert.equal(calls, 2, 'the connect itself asked DNS again and checked that answer');
  assert.deepEqual(hits, [], 'nothing reached the loopback server');
});
