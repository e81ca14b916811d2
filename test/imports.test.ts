/**
 * The import order of `src/`, read from the import and export lines of its `.ts` sources:
 * the library (every module outside `cli/` and `demo/`) imports neither `cli/` nor `demo/`,
 * and no module of `src/` imports itself back through others (no cycle, type-only imports
 * included).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));

/** Every `.ts` file of `src/`, as a path relative to it (`channel.ts`, `cli/index.ts`). */
const modules = readdirSync(srcDir, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts'))
  .map((f) => f.split('\\').join('/'))
  .sort();

/** The specifiers `text` imports or re-exports from, statically or with `import()`. */
function specifiers(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const found: string[] = [];
  for (const m of code.matchAll(/^\s*(?:import|export)\b[^;'"]*?\bfrom\s*['"]([^'"]+)['"]/gm)) {
    found.push(m[1] as string);
  }
  for (const m of code.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm)) found.push(m[1] as string);
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1] as string);
  return found;
}

/** The modules of `src/` that `module` imports (relative specifiers that land in `src/`). */
function importsOf(module: string): string[] {
  const text = readFileSync(join(srcDir, module), 'utf8');
  const out = new Set<string>();
  for (const spec of specifiers(text)) {
    if (!spec.startsWith('.')) continue;
    const target = normalize(join(dirname(module), spec))
      .split('\\')
      .join('/')
      .replace(/\.js$/, '.ts');
    if (target.startsWith('..')) continue; // outside src/: the addon's generated types
    out.add(target);
  }
  return [...out].sort();
}

/** A cycle in `graph` as the modules along it (first one repeated at the end), or undefined. */
function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...path.slice(path.indexOf(node)), node];
    state.set(node, 'open');
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    path.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

const graph = new Map(modules.map((m) => [m, importsOf(m)]));
const isApp = (m: string): boolean => m.startsWith('cli/') || m.startsWith('demo/');

test('the import lines are found', (t) => {
  t.true(modules.includes('index.ts') && modules.includes('cli/index.ts'), `${modules}`);
  // What index.ts is known to import: the parser sees multi-line and `export … from` lines.
  t.true(
    ['catalog.ts', 'channel.ts', 'errors.ts'].every((m) => graph.get('index.ts')?.includes(m)),
  );
  for (const [m, targets] of graph) {
    for (const target of targets) t.true(modules.includes(target), `${m} imports ${target}`);
  }
  t.deepEqual(specifiers("import {\n  a,\n  type B,\n} from './x.js';\nexport * from './y.js';"), [
    './x.js',
    './y.js',
  ]);
});

test('the library imports neither cli/ nor demo/', (t) => {
  const wrong = [...graph]
    .filter(([m]) => !isApp(m))
    .flatMap(([m, targets]) => targets.filter(isApp).map((target) => `${m} -> ${target}`));
  t.deepEqual(wrong, [], 'library modules that import the CLI or the demo');
  t.true(
    [...graph].some(([m, targets]) => isApp(m) && targets.includes('index.ts')),
    'the CLI and demo are built on the public API (index.ts)',
  );
});

test('no import cycle among the modules of src/', (t) => {
  // The finder finds one where there is one.
  const ring = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
  ]);
  t.deepEqual(findCycle(ring), ['a.ts', 'b.ts', 'c.ts', 'a.ts']);
  t.is(findCycle(new Map([['a.ts', ['b.ts']]])), undefined);
  const cycle = findCycle(graph);
  t.is(cycle, undefined, `an import cycle: ${cycle?.join(' -> ')}`);
});
