#!/usr/bin/env node
// `npm run test:pack` (and a step of `npm test`): the package as a user gets it. `npm pack`s
// this project (its `prepare` builds the portable addon, scripts/prepare.mjs), installs the
// tarball into an empty temporary project with `npm install --prefer-offline` (the
// dependencies' tarballs are in the npm cache after this project's own install; their
// metadata is fetched from the registry when a fresh `npm ci` left none), and there, on a PATH
// of only Node's and npm's directories plus /usr/bin and /bin (checked to reach no cargo,
// rustc or rustup), publishes and subscribes across two processes through `import 'shmring'`
// and runs `npx shmring ls`. Runs under node:test; `--test-reporter=tap` gives the
// `# pass N` / `# fail N` trailer that scripts/test.mjs counts. The temporary project, the
// tarball and the channel's segment in /dev/shm are removed even when a check fails.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
/** Messages the child publishes; more than a default 1 MiB ring holds, so `send` waits too. */
const COUNT = 20_000;
const channel = `pack-check-${process.pid}`;
const segment = `/dev/shm/shmring.${channel}`;
const TIMEOUT_MS = 60_000;

const tmp = mkdtempSync(join(tmpdir(), 'shmring-pack-'));
const project = join(tmp, 'project');

/** The machine's Node (under `npm test`, `node` on the PATH is node_modules' Node 24). */
const node = process.env.npm_node_execpath ?? process.execPath;

/** The first directory on the PATH (outside this repository) that holds `bin`. */
function onPath(bin) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '' || dir.startsWith(repo)) continue;
    if (existsSync(join(dir, bin))) return dir;
  }
  return undefined;
}

/** Node's and npm's directories, then /usr/bin and /bin: no ~/.cargo/bin. */
const toolPath = [...new Set([dirname(node), onPath('npm'), '/usr/bin', '/bin'])]
  .filter((d) => d !== undefined)
  .join(delimiter);

/**
 * A small environment: the tool PATH, HOME (npm's cache and config), no `npm_*` variables of
 * the `npm test` that may be running this (its prefix and scripts are not the temp project's).
 */
const env = {
  PATH: toolPath,
  HOME: process.env.HOME ?? tmp,
  TMPDIR: tmpdir(),
  LANG: 'C.UTF-8',
  ...(process.env.npm_config_cache ? { npm_config_cache: process.env.npm_config_cache } : {}),
};

/**
 * Runs `cmd args` to the end in its own process group (killed whole at `TIMEOUT_MS`);
 * resolves with its status and output.
 */
function run(cmd, args, opts = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? project,
      env: opts.env ?? env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => {
      stdout += d;
    });
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, TIMEOUT_MS);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      // Reap the group: nothing a child started outlives the check.
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the whole group has exited
      }
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const show = (r) => `exit ${r.code ?? r.signal}\n${r.stdout}${r.stderr}`;

// The subscriber (parent) and the publisher (child) the installed package runs. The child
// publishes `{ i, s }` with `s` of i % 97 letters; the parent checks order, count and a
// checksum over every field and prints one JSON line.
const publisher = `import { open } from 'shmring';
const [name, count] = [process.argv[2], Number(process.argv[3])];
const ch = open(name);
let sum = 0;
for (let i = 0; i < count; i++) {
  const m = { i, s: 'x'.repeat(i % 97) };
  sum = (sum * 31 + i + m.s.length) % 2147483647;
  if (!ch.publish(m)) await ch.send(m); // ring full: wait for room
}
ch.close();
console.log(JSON.stringify({ published: count, sum }));
`;
const subscriber = `import { spawn } from 'node:child_process';
import { open } from 'shmring';
const [name, count] = [process.argv[2], Number(process.argv[3])];
const ch = open(name, { create: true });
let received = 0;
let ordered = true;
let sum = 0;
const done = new Promise((resolve, reject) => {
  const sub = ch.messages().subscribe({
    next: (m) => {
      if (m.i !== received || m.s !== 'x'.repeat(m.i % 97)) ordered = false;
      sum = (sum * 31 + m.i + m.s.length) % 2147483647;
      received += 1;
      if (received === count) {
        sub.unsubscribe();
        resolve();
      }
    },
    error: reject,
  });
});
// Subscribed first: a topic delivers what is published after a subscriber joined.
const child = spawn(process.execPath, ['publish.mjs', name, String(count)], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
child.stdout.on('data', (d) => { out += d; });
const [status] = await Promise.all([
  new Promise((resolve) => child.on('close', (code) => resolve(code))),
  done,
]);
ch.close();
console.log(JSON.stringify({ received, ordered, sum, status, child: JSON.parse(out) }));
`;

let packed = { code: 'not run', stdout: '', stderr: '' };
let installed = { code: 'not run', stdout: '', stderr: '' };

before(async () => {
  // In this repository with its full environment: packing builds the addon (cargo), as
  // `npm publish` would. Only the install and what follows use the tool PATH.
  packed = await run('npm', ['pack', '--pack-destination', tmp], { cwd: repo, env: process.env });
  const tarballs = readdirSync(tmp).filter((f) => f.endsWith('.tgz'));
  if (packed.code !== 0 || tarballs.length !== 1) return;
  mkdirSync(project);
  writeFileSync(
    join(project, 'package.json'),
    `${JSON.stringify({ name: 'shmring-pack-check', private: true, type: 'module' }, null, 2)}\n`,
  );
  writeFileSync(join(project, 'publish.mjs'), publisher);
  writeFileSync(join(project, 'subscribe.mjs'), subscriber);
  installed = await run('npm', [
    'install',
    '--prefer-offline',
    '--no-audit',
    '--no-fund',
    join(tmp, tarballs[0]),
  ]);
});

after(() => {
  rmSync(tmp, { recursive: true, force: true });
  rmSync(segment, { force: true });
});

test('npm pack builds one tarball with the portable addon, dist and nothing else', (t) => {
  assertOk(packed, 'npm pack');
  const tarball = readdirSync(tmp).find((f) => f.endsWith('.tgz'));
  const r = spawnSync('tar', ['-tzf', join(tmp, tarball)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tar -tzf ${tarball}: ${r.stderr}`);
  const files = r.stdout.trim().split('\n');
  const outsideDist = files.filter((f) => !f.startsWith('package/dist/')).sort();
  t.assert.deepStrictEqual(outsideDist, [
    'package/README.md',
    'package/native/binding.d.ts',
    'package/native/shmring.linux-x64-gnu.node',
    'package/package.json',
  ]);
  t.assert.ok(files.includes('package/dist/index.js'));
  t.assert.ok(files.includes('package/dist/cli/index.js'));
});

test('the tool PATH reaches node and npm but no cargo, rustc or rustup', () => {
  for (const bin of ['node', 'npm', 'npx']) {
    const r = spawnSync('sh', ['-c', `command -v ${bin}`], { env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${bin} is not on ${toolPath}`);
  }
  for (const bin of ['cargo', 'rustc', 'rustup']) {
    const r = spawnSync('sh', ['-c', `command -v ${bin}`], { env, encoding: 'utf8' });
    if (r.status === 0) throw new Error(`${bin} is reachable on ${toolPath}: ${r.stdout.trim()}`);
  }
});

test('the tarball installs into an empty project without a Rust toolchain', async (t) => {
  assertOk(installed, 'npm install <tarball>');
  const addon = join(project, 'node_modules/shmring/native/shmring.linux-x64-gnu.node');
  t.assert.ok(existsSync(addon), `${addon} is installed`);
  // The addon installed is the portable one: no GLIBC version above 2.17 (test/elf.ts,
  // built into build/test/ by the `prepare` that packing ran).
  const elf = await import(new URL('../build/test/elf.js', import.meta.url).href);
  const above = elf
    .requiredVersions(addon)
    .filter((n) => {
      const v = elf.glibcVersion(n.name);
      return v !== undefined && elf.compareVersions(v, [2, 17]) > 0;
    })
    .map((n) => n.name);
  t.assert.deepStrictEqual(above, [], 'glibc versions above 2.17 the installed addon needs');
});

test(`a child publishes ${COUNT} messages, the parent receives them all in order`, async (t) => {
  assertOk(installed, 'npm install <tarball>');
  const r = await run(node, ['subscribe.mjs', channel, String(COUNT)]);
  assertOk(r, 'node subscribe.mjs');
  const got = JSON.parse(r.stdout.trim().split('\n').at(-1));
  t.assert.strictEqual(got.status, 0, 'the publisher exited 0');
  t.assert.strictEqual(got.child.published, COUNT);
  t.assert.strictEqual(got.received, COUNT);
  t.assert.strictEqual(got.ordered, true, 'every message in order, with its payload');
  t.assert.strictEqual(got.sum, got.child.sum, 'checksum of what was received vs published');
  t.assert.strictEqual(got.sum, expectedSum(COUNT));
});

test('npx shmring ls lists the channel', async (t) => {
  assertOk(installed, 'npm install <tarball>');
  // `--no`: the installed bin or a failure, never a download.
  const r = await run('npx', ['--no', 'shmring', 'ls', channel]);
  assertOk(r, 'npx shmring ls');
  const row = r.stdout.split('\n').find((l) => l.startsWith(`${channel} `));
  t.assert.ok(row !== undefined, `a row for ${channel} in:\n${r.stdout}`);
  t.assert.match(row, /\btopic\b/);
});

/** The checksum of the messages the publisher sends, computed here. */
function expectedSum(count) {
  let sum = 0;
  for (let i = 0; i < count; i++) sum = (sum * 31 + i + (i % 97)) % 2147483647;
  return sum;
}

function assertOk(r, what) {
  if (r.code !== 0) throw new Error(`${what}: ${show(r)}`);
}
