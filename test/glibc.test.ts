/**
 * The glibc floor: the built addon runs on glibc 2.17 and newer (README, "Install"). Reads the
 * symbol versions native/shmring.linux-x64-gnu.node requires and fails if any GLIBC_x.y is
 * above the floor, as it is when the addon is built natively on a newer glibc (`npm run
 * build`) rather than against the old sysroot of `npm run build:portable`.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { compareVersions, glibcVersion, requiredVersions, type VersionNeed } from './elf.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const addon = join(repo, 'native', 'shmring.linux-x64-gnu.node');
const FLOOR = [2, 17];

const glibcNeeds = (needs: VersionNeed[]) =>
  needs.flatMap((n) => {
    const v = glibcVersion(n.name);
    return v === undefined ? [] : [{ ...n, v }];
  });
const highest = (needs: VersionNeed[]) =>
  glibcNeeds(needs).reduce<number[]>((m, n) => (compareVersions(n.v, m) > 0 ? n.v : m), []);

/** `readelf -V`'s version needs as `file name` lines, or undefined when readelf is missing. */
function readelfNeeds(path: string): string[] | undefined {
  const r = spawnSync('readelf', ['-V', '--wide', path], { encoding: 'utf8' });
  if (r.error !== undefined) return undefined;
  const at = r.stdout.indexOf("Version needs section '.gnu.version_r'");
  if (r.status !== 0 || at < 0) throw new Error(`readelf -V ${path}: ${r.stderr}${r.stdout}`);
  const out: string[] = [];
  let file = '';
  for (const line of r.stdout.slice(at).split('\n').slice(1)) {
    if (/section '/.test(line)) break;
    const f = /File: (\S+)/.exec(line);
    if (f?.[1] !== undefined) file = f[1];
    const n = /Name: (\S+)/.exec(line);
    if (n?.[1] !== undefined) out.push(`${file} ${n[1]}`);
  }
  return out;
}

test('the ELF reader finds the glibc versions a known binary needs (this Node)', (t) => {
  const needs = requiredVersions(process.execPath);
  const libc = glibcNeeds(needs).filter((n) => n.file === 'libc.so.6');
  t.true(libc.length > 0, `GLIBC versions of libc.so.6 in ${process.execPath}`);
  t.true(
    libc.some((n) => n.name === 'GLIBC_2.2.5'),
    'the x86_64 base version',
  );
});

test('the ELF reader refuses a file that is not ELF', (t) => {
  t.throws(() => requiredVersions(join(repo, 'package.json')), { message: /not an ELF file/ });
});

test('the ELF reader agrees with readelf -V on the addon and on Node', (t) => {
  for (const path of [addon, process.execPath]) {
    const ours = requiredVersions(path).map((n) => `${n.file} ${n.name}`);
    const theirs = readelfNeeds(path);
    if (theirs === undefined) {
      // Not silent: the log line shows in ava's output (and as a TAP comment under npm test).
      t.log(`readelf is not on the PATH: ${path} is checked by the JS ELF reader alone`);
      t.pass('no readelf to compare with');
      continue;
    }
    t.deepEqual([...ours].sort(), [...theirs].sort(), path);
  }
});

test(`the addon needs glibc ${FLOOR.join('.')} at most`, (t) => {
  const needs = requiredVersions(addon);
  const glibc = glibcNeeds(needs);
  t.true(glibc.length > 0, 'the addon links glibc');
  const above = glibc.filter((n) => compareVersions(n.v, FLOOR) > 0);
  t.log(`highest GLIBC version required: ${highest(needs).join('.')}`);
  t.deepEqual(
    above.map((n) => `${n.file} ${n.name}`),
    [],
    `${addon} needs glibc above ${FLOOR.join('.')}: built natively? \`npm run build:portable\` links it against the glibc 2.17 sysroot`,
  );
});
