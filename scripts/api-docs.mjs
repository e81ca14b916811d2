#!/usr/bin/env node
// `npm run docs` (after `tsc`): the TypeScript API reference, docs/api/README.md, generated
// from the TSDoc comments that tsc keeps in the emitted declaration files (dist/*.d.ts).
//
// Why not TypeDoc or API Extractor: both need TypeScript's compiler API, which TypeScript 7
// (this project's compiler) no longer has. The .d.ts files are the public surface exactly
// as consumers see it, and tsc emits them in a regular shape (one declaration per statement,
// each member ending in `;`), so a small scanner that respects comments, strings and
// nesting is enough: it lists what src/index.ts exports, in that order, with each
// declaration's signature, its doc comment and its members' doc comments. `@internal`
// members and `#private` fields are left out. The output directory ignores itself in git.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const dist = join(repo, 'dist');
const out = join(repo, 'docs', 'api');

/**
 * Splits declaration text into statements at nesting depth 0, each with the doc comment
 * right before it. A statement ends at `;` at depth 0, or at the `}` that closes the body
 * of a class, interface, enum or namespace.
 */
function statements(text) {
  const result = [];
  let depth = 0;
  let doc;
  let start = -1;
  let i = 0;
  const bodyEnds = (s) =>
    /^(export\s+)?(declare\s+)?(abstract\s+)?(class|interface|enum|namespace)\b/.test(s);
  while (i < text.length) {
    const c = text[i];
    if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const comment = text.slice(i, end + 2);
      if (depth === 0 && start < 0 && comment.startsWith('/**')) doc = comment;
      i = end + 2;
      continue;
    }
    if (c === '/' && text[i + 1] === '/') {
      i = text.indexOf('\n', i);
      if (i < 0) break;
      continue;
    }
    if (depth === 0 && start < 0) {
      if (/\s/.test(c)) {
        i++;
        continue;
      }
      start = i;
    }
    if (c === "'" || c === '"' || c === '`') {
      let j = i + 1;
      while (j < text.length && text[j] !== c) j += text[j] === '\\' ? 2 : 1;
      i = j + 1;
      continue;
    }
    if (c === '{' || c === '(' || c === '[' || c === '<') depth++;
    if (c === '}' || c === ')' || c === ']') depth--;
    if (c === '>' && text[i - 1] !== '=') depth--; // `=>` is not a closing bracket
    i++;
    const stmt = start >= 0 ? text.slice(start, i) : '';
    if (depth === 0 && start >= 0 && (c === ';' || (c === '}' && bodyEnds(stmt)))) {
      result.push({ doc, code: stmt.trim() });
      doc = undefined;
      start = -1;
    }
  }
  return result;
}

/** The name a statement declares, and what kind of thing it is. */
function declared(code) {
  const m = code.match(
    /^(?:export\s+)?(?:declare\s+)?(?:abstract\s+)?(class|interface|type|function|const|let|enum)\s+([A-Za-z_$][\w$]*)/,
  );
  return m ? { kind: m[1], name: m[2] } : undefined;
}

/** A member's name: `readonly name: T;`, `get closed(): boolean;`, `[Symbol.asyncIterator](): …`. */
function memberName(code) {
  const m = code.match(
    /^(?:(?:readonly|static|abstract|protected|public|get|set|async)\s+)*(\[[^\]]+\]|[#\w$]+)/,
  );
  return m ? m[1] : code;
}

/** The comment's text without the `/** *\/` frame and the leading ` * `. */
function commentText(doc) {
  if (doc === undefined) return '';
  return doc
    .replace(/^\/\*\*\s?/, '')
    .replace(/\s*\*\/$/, '')
    .split('\n')
    .map((l) => l.replace(/^\s*\* ?/, ''))
    .join('\n')
    .trim();
}

/** Splits comment text into its description and its block tags (`@example`, ...). */
function parseComment(doc) {
  const text = commentText(doc);
  const tags = [];
  let description = [];
  let current;
  let fence = false;
  for (const line of text.split('\n')) {
    if (line.trimStart().startsWith('```')) fence = !fence;
    const tag = !fence && line.match(/^@(\w+)\s?(.*)$/);
    if (tag) {
      current = { tag: tag[1], lines: tag[2] ? [tag[2]] : [] };
      tags.push(current);
      if (current.tag === 'example' && tag[2]?.startsWith('```')) fence = true;
    } else if (current) current.lines.push(line);
    else description.push(line);
  }
  description = description.join('\n').trim();
  return { description, tags: tags.map((t) => ({ tag: t.tag, text: t.lines.join('\n').trim() })) };
}

const anchor = (name) => name.toLowerCase().replace(/[^a-z0-9]+/g, '-');

/** `{@link X}`, `{@link X.y}`, `{@link X | text}` → a link to X's section, or code. */
function links(text, exported) {
  return text.replace(/\{@link\s+([^}|\s]+)\s*(?:\|\s*([^}]+))?\}/g, (_, target, label) => {
    const base = target.split('.')[0];
    const shown = label?.trim() ?? target;
    return exported.has(base) ? `[\`${shown}\`](#${anchor(base)})` : `\`${shown}\``;
  });
}

/** One line per signature, however tsc wrapped it. */
const oneLine = (code) => code.replace(/\s*\n\s*/g, ' ').replace(/\{ /g, '{ ');

function renderDoc(doc, exported, headingLevel) {
  const { description, tags } = parseComment(doc);
  const parts = [];
  if (description) parts.push(links(description, exported));
  for (const { tag, text } of tags) {
    if (tag === 'example') parts.push(`${'#'.repeat(headingLevel)} Example\n\n${text}`);
    else if (tag === 'param') parts.push(`- parameter ${links(text, exported)}`);
    else if (tag === 'returns') parts.push(`Returns ${links(text, exported)}`);
    else if (tag === 'throws') parts.push(`Throws ${links(text, exported)}`);
    else if (tag === 'deprecated') parts.push(`**Deprecated.** ${links(text, exported)}`);
  }
  return parts.join('\n\n');
}

const isInternal = (doc) => doc !== undefined && /@internal\b/.test(doc);

function renderDeclaration({ doc, code }, info, exported) {
  const lines = [`<a id="${anchor(info.name)}"></a>`, `### ${info.name}`, ''];
  const bodyStart = code.indexOf('{');
  const hasBody = (info.kind === 'class' || info.kind === 'interface') && bodyStart >= 0;
  const header = hasBody ? code.slice(0, bodyStart).trim() : code;
  const members = hasBody
    ? statements(code.slice(bodyStart + 1, code.lastIndexOf('}'))).filter(
        (m) => !m.code.startsWith('#private') && !isInternal(m.doc),
      )
    : [];
  const signature = hasBody
    ? [`${oneLine(header)} {`, ...members.map((m) => `  ${oneLine(m.code)}`), '}'].join('\n')
    : code;
  lines.push('```ts', signature, '```', '');
  const text = renderDoc(doc, exported, 4);
  if (text) lines.push(text, '');
  const documented = members.filter((m) => m.doc !== undefined);
  if (documented.length > 0) {
    for (const m of documented) {
      const name = memberName(m.code);
      const { description, tags } = parseComment(m.doc);
      const simple = tags.length === 0 && !description.includes('\n\n');
      if (simple) {
        lines.push(`- **\`${name}\`** — ${links(description.replace(/\n/g, ' '), exported)}`);
      } else {
        lines.push('', `#### ${info.name}.${name.replace(/^\[|\]$/g, '')}`, '');
        lines.push('```ts', oneLine(m.code), '```', '');
        lines.push(renderDoc(m.doc, exported, 5), '');
      }
    }
    lines.push('');
  }
  return lines.join('\n');
}

// What the package exports, from dist/index.d.ts: `export { a, type B } from './mod.js';`
// or `export type { B } from './mod.js';`.
const index = readFileSync(join(dist, 'index.d.ts'), 'utf8');
const modules = [];
for (const s of statements(index)) {
  const m = s.code.match(/^export\s+(?:type\s+)?\{([\s\S]*)\}\s*from\s*'\.\/([\w./-]+)\.js'/);
  if (!m) continue;
  const names = m[1]
    .split(',')
    .map((n) => n.trim().replace(/^type\s+/, ''))
    .filter(Boolean);
  modules.push({ file: m[2], names });
}
const exported = new Set(modules.flatMap((m) => m.names));
const packageDoc = statements(index).length > 0 ? index.match(/^\/\*\*[\s\S]*?\*\//)?.[0] : '';

const TITLES = {
  catalog: 'Opening, listing and removing channels',
  channel: 'Channels: publish, subscribe, inspect',
  types: 'Options and reports',
  codec: 'Codecs',
  errors: 'Errors',
};
const toc = [];
const sections = [];
const missing = [];
for (const { file, names } of modules) {
  const text = readFileSync(join(dist, `${file}.d.ts`), 'utf8');
  const found = new Map();
  for (const s of statements(text)) {
    const info = declared(s.code);
    if (info && names.includes(info.name) && !found.has(info.name))
      found.set(info.name, { s, info });
  }
  const title = TITLES[file] ?? file;
  toc.push(
    `- [${title}](#${anchor(`module-${file}`)}): ${names.map((n) => `[\`${n}\`](#${anchor(n)})`).join(', ')}`,
  );
  sections.push(
    `<a id="${anchor(`module-${file}`)}"></a>`,
    `## ${title}`,
    '',
    `From \`src/${file}.ts\`.`,
    '',
  );
  for (const name of names) {
    const entry = found.get(name);
    if (entry === undefined) {
      missing.push(`${file}: ${name}`);
      continue;
    }
    sections.push(renderDeclaration(entry.s, entry.info, exported));
  }
}
if (missing.length > 0) {
  console.error(`api-docs: exported but not found in the .d.ts files: ${missing.join(', ')}`);
  process.exitCode = 1;
}

const page = [
  '# shmring — TypeScript API reference',
  '',
  '<!-- Generated by `npm run docs` (scripts/api-docs.mjs) from the TSDoc comments in',
  '     dist/*.d.ts. Do not edit: change the comments in src/ and run it again. -->',
  '',
  renderDoc(packageDoc?.replace('@packageDocumentation', ''), exported, 3),
  '',
  "Everything below is exported from the package root: `import { … } from 'shmring'`.",
  'The Rust crate has its own reference: `cargo doc --no-deps -p shmring --open`',
  '(`npm run docs` builds it into `target/doc/shmring/`).',
  '',
  ...toc,
  '',
  ...sections,
].join('\n');

mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'README.md'), `${page.replace(/\n{3,}/g, '\n\n').trim()}\n`);
// Generated output: not committed.
writeFileSync(join(out, '.gitignore'), '*\n');
console.log(
  `api-docs: ${exported.size} exports documented in ${join('docs', 'api', 'README.md')} ` +
    `(from ${dirname(join('dist', 'index.d.ts'))}/*.d.ts)`,
);
