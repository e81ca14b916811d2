/**
 * `npm run example:two-hosts [-- --count N] [--core] [--json]`
 *
 * Two "hosts" on one machine, each with its own channel directory, joined through a NATS
 * server that this example starts (the Debian package `nats-server`):
 *
 *   host A: publisher.mjs ──orders──> shmring bridge export ──┐
 *                                                            NATS (JetStream stream ORDERS)
 *   host B: subscriber.mjs <──orders── shmring bridge import ──┘
 *
 * The bridges carry the bytes untouched (the publisher and subscriber both use the JSON
 * codec; the bridges never decode). At the end it prints what each side counted.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { beside, fmt, options } from '../lib/processes.mjs';

const opts = options({ count: 20_000 }, { core: { type: 'boolean', default: false } });
const cli = beside(import.meta.url, '../../dist/cli/index.js');
if (spawnSync('nats-server', ['--version']).status !== 0) {
  console.error('two-hosts: nats-server is missing (apt-get install -y nats-server)');
  process.exit(1);
}

const children = new Set();
const dirs = [];
const cleanup = () => {
  for (const c of children) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
};
process.once('exit', cleanup);
for (const s of ['SIGINT', 'SIGTERM']) process.once(s, () => process.exit(130));

/** Starts `cmd args`; resolves once it printed `ready` (if `ready`), with its lines. */
async function start(cmd, args, ready) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const lines = [];
  const stderr = [];
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l));
  createInterface({ input: child.stderr }).on('line', (l) => stderr.push(l));
  const exit = once(child, 'close').then(() => children.delete(child));
  if (ready) {
    while (!lines.includes('ready')) {
      if (child.exitCode !== null) throw new Error(`${args[1]} failed: ${stderr.join(' ')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  return {
    child,
    lines,
    stderr,
    exit,
    last: () => JSON.parse(lines.findLast((l) => l.startsWith('{'))),
  };
}

const port = await new Promise((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const store = mkdtempSync(join(tmpdir(), 'two-hosts-nats-'));
const hostA = mkdtempSync('/dev/shm/two-hosts-A-');
const hostB = mkdtempSync('/dev/shm/two-hosts-B-');
dirs.push(store, hostA, hostB);
const url = `nats://127.0.0.1:${port}`;
const nats = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store], {
  stdio: 'ignore',
});
children.add(nats);
await new Promise((r) => setTimeout(r, 300));

const mode = opts.core ? [] : ['--jetstream', '--stream', 'ORDERS'];
console.log(
  `two-hosts: ${fmt(opts.count)} orders from host A (${hostA}) to host B (${hostB}) via ${url} (${opts.core ? 'core NATS' : 'JetStream'})`,
);
const sub = await start(
  process.execPath,
  [beside(import.meta.url, 'subscriber.mjs'), hostB, 'orders', String(opts.count)],
  true,
);
const common = ['--nats', url, ...mode, '--json', '--report-ms', '1000'];
const imp = await start(
  process.execPath,
  [cli, 'bridge', 'import', 'orders', 'orders', '--dir', hostB, ...common],
  true,
);
// The exporter needs the channel: the publisher creates it, so start it after a first one exists.
spawnSync(process.execPath, [beside(import.meta.url, 'publisher.mjs'), hostA, 'orders', '0']);
const exp = await start(
  process.execPath,
  [cli, 'bridge', 'export', 'orders', '--subject', 'orders', '--dir', hostA, ...common],
  true,
);
const t0 = performance.now();
const pub = await start(
  process.execPath,
  [beside(import.meta.url, 'publisher.mjs'), hostA, 'orders', String(opts.count)],
  false,
);
await pub.exit;
await sub.exit;
const ms = performance.now() - t0;
for (const b of [exp, imp]) b.child.kill('SIGTERM');
await Promise.all([exp.exit, imp.exit]);
const report = (b) => JSON.parse(b.stderr.findLast((l) => l.startsWith('{')));
const result = {
  published: pub.last().published,
  ...sub.last(),
  exported: report(exp).forwarded,
  imported: report(imp).forwarded,
  lost: report(exp).lost + report(imp).lost,
  duplicates: report(imp).duplicates,
  msgPerSec: Math.round((opts.count / ms) * 1000),
};
console.log(
  `host A published ${fmt(result.published)}; bridge exported ${fmt(result.exported)}, imported ${fmt(result.imported)}; host B received ${fmt(result.received)} (${result.outOfOrder} out of order), lost ${result.lost}, ${fmt(result.msgPerSec)} msg/s`,
);
const ok = result.received === result.published && result.outOfOrder === 0;
if (opts.json) console.log(JSON.stringify({ ok, ...result }));
// The server child keeps the event loop alive: end here (the exit handler cleans up).
process.exit(ok ? 0 : 1);
