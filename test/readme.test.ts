/**
 * The README's runnable snippets (a ```ts block right after a `<!-- test -->` line) are
 * type-checked with the project's tsconfig, run as separate processes, and what each prints
 * is compared with the `// expected` comments of its `console.log` lines (a trailing
 * `(explanation)` is not part of the expected text). Docs cannot rot.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { unlink } from 'shmring';
import { runToEnd } from './helpers.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const readme = readFileSync(join(repo, 'README.md'), 'utf8');
const snippets = [...readme.matchAll(/<!-- test -->\n```ts\n([\s\S]*?)```/g)].map((m) => ({
  code: m[1] ?? '',
  line: readme.slice(0, m.index).split('\n').length + 2,
}));
const dir = join(repo, 'build', `readme-snippets-${process.pid}`);

/** The expected output of each `console.log(...); // expected` line, in order. */
function expectedOutput(code: string): string[] {
  return [
    ...code.matchAll(/^\s*(?:await .*\.catch\(.*console\.log|console\.log)\(.*\/\/ (.*)$/gm),
  ].map((m) => (m[1] ?? '').replace(/ \([^()]*\)$/, '').trim());
}

test.before(async () => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  snippets.forEach((s, i) => {
    // Unique channel names per run: `'readme-x'` becomes `'readme-<pid>-<i>-x'`.
    const code = s.code.replaceAll("'readme-", `'readme-${process.pid}-${i}-`);
    writeFileSync(join(dir, `snippet-${i}.ts`), code);
  });
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      extends: '../../tsconfig.json',
      compilerOptions: { rootDir: '.', outDir: 'out', declaration: false, sourceMap: false },
      include: ['*.ts'],
    }),
  );
});

test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test('the README has runnable snippets', (t) => {
  t.true(snippets.length >= 5, `${snippets.length} snippets marked <!-- test -->`);
});

test.serial('the snippets type-check', async (t) => {
  const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  const r = await promisify(execFile)(process.execPath, [tsc, '-p', dir]).then(
    () => ({ ok: true, out: '' }),
    (e: { stdout?: string; stderr?: string }) => ({ ok: false, out: `${e.stdout}${e.stderr}` }),
  );
  t.true(r.ok, r.out);
});

for (const [i, s] of snippets.entries()) {
  test.serial(`README snippet at line ${s.line} runs and prints what it says`, async (t) => {
    const names = [...new Set(s.code.match(/'readme-[A-Za-z0-9._-]+'/g) ?? [])].map((n) =>
      n.slice(1, -1).replace('readme-', `readme-${process.pid}-${i}-`),
    );
    t.teardown(() => {
      for (const n of names) {
        try {
          unlink(n);
        } catch {
          // removed by the snippet itself
        }
      }
    });
    const r = await runToEnd(t, process.execPath, [join(dir, 'out', `snippet-${i}.js`)]);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(r.stdout.trim().split('\n'), expectedOutput(s.code));
  });
}
