/**
 * Facts written on both sides of the binding, compared so that they cannot drift: the error
 * codes (Rust `ErrorCode` and its `as_str`, TypeScript `ErrorCode` and its classes), the
 * strings of the enum options (Rust `Kind`, `SyncMode`, `Policy`, `Delivery`, `WaitStrategy`; the
 * TypeScript option types and the lists the validators accept), the frame the native
 * drain and `recv` write (`[length: u32 LE][payload]`, read by `src/frame.ts` alone), and
 * the hand-written signatures of the fast-path calls (`FastPath` in `src/native.ts`, the
 * callbacks `crates/shmring-node/src/fast.rs` registers, read with the accessors of `Call` in
 * `crates/shmring-node/src/callback.rs`), and the way `publishMany`'s partial count crosses
 * (a `published` property, never message text).
 *
 * The Rust side is read from the source of `crates/shmring/src` (every `.rs` file, wherever
 * a declaration lives), the TypeScript types from `src/`, and the rest from the built
 * modules at run time.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import * as shmring from 'shmring';
import { channelName } from './helpers.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const dist = new URL('../../dist/', import.meta.url);

/** Every file under `dir` whose name ends in `ext`, with its text (paths relative to the repo). */
function sources(dir: string, ext: string): { path: string; text: string }[] {
  const out: { path: string; text: string }[] = [];
  for (const e of readdirSync(join(repo, dir), { withFileTypes: true, recursive: true })) {
    if (!e.isFile() || !e.name.endsWith(ext)) continue;
    const path = join(e.parentPath, e.name);
    out.push({ path: relative(repo, path), text: readFileSync(path, 'utf8') });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path));
}

/** `text` without `//` comments (doc comments included) and `/* … *\/` blocks. */
const uncommented = (text: string): string =>
  text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');

/** The text between the `{` at or after `from` and its matching `}`. */
function braced(text: string, from: number): string {
  const open = text.indexOf('{', from);
  if (open < 0) throw new Error(`no '{' after offset ${from}`);
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '{') depth++;
    else if (text[i] === '}' && --depth === 0) return text.slice(open + 1, i);
  }
  throw new Error(`unbalanced braces after offset ${from}`);
}

/** The one place in `files` that matches `re`, as the file's comment-free text and offset. */
function findOne(
  files: { path: string; text: string }[],
  re: RegExp,
): { path: string; text: string; at: number } {
  const hits = files.flatMap(({ path, text }) => {
    const code = uncommented(text);
    const m = re.exec(code);
    return m === null ? [] : [{ path, text: code, at: m.index }];
  });
  if (hits.length !== 1) {
    throw new Error(`${re} matches in ${hits.length} files (${hits.map((h) => h.path)}), not 1`);
  }
  return hits[0] as { path: string; text: string; at: number };
}

/** The unit variants of the Rust enum whose body is `body` (attributes and comments gone). */
const variantsOf = (body: string): string[] =>
  [...body.replace(/#\[[^\]]*\]/g, '').matchAll(/\b([A-Z]\w*)\s*(?:=\s*\d+\s*)?,?/g)].map(
    (m) => m[1] as string,
  );

/**
 * The body of method `fn` of Rust type `type`, from whichever `impl type { … }` block of
 * `files` has it (a type may have several blocks, in several files).
 */
function implFn(files: { path: string; text: string }[], type: string, fn: string): string {
  const found: string[] = [];
  for (const { text } of files) {
    const code = uncommented(text);
    for (const m of code.matchAll(new RegExp(`\\bimpl ${type}\\s*\\{`, 'g'))) {
      const block = braced(code, m.index);
      const at = block.search(new RegExp(`\\bfn ${fn}\\b`));
      if (at >= 0) found.push(braced(block, block.indexOf(')', at)));
    }
  }
  if (found.length !== 1) throw new Error(`${type}::${fn} found ${found.length} times, not once`);
  return found[0] as string;
}

const rust = sources('crates/shmring/src', '.rs');
const binding = sources('crates/shmring-node/src', '.rs');
const ts = sources('src', '.ts');

/** Rust `ErrorCode`: its variants, and what `as_str` says for each. */
function rustErrorCodes(): { variants: string[]; strings: Map<string, string> } {
  const decl = findOne(rust, /pub enum ErrorCode\s*\{/);
  const variants = variantsOf(braced(decl.text, decl.at));
  const strings = new Map<string, string>();
  for (const m of implFn(rust, 'ErrorCode', 'as_str').matchAll(/Self::(\w+)\s*=>\s*"([^"]*)"/g)) {
    strings.set(m[1] as string, m[2] as string);
  }
  return { variants, strings };
}

/** The `code_enum!` enums of the Rust crate: each one's variants and option strings. */
function rustCodeEnums(): Map<string, { variants: string[]; strings: string[] }> {
  const out = new Map<string, { variants: string[]; strings: string[] }>();
  for (const { text } of rust) {
    const code = uncommented(text);
    for (const m of code.matchAll(/code_enum!\s*\{/g)) {
      const body = braced(code, m.index);
      const name = /^\s*(?:#\[[^\]]*\]\s*)*(\w+)\s*\{/.exec(body)?.[1];
      if (name === undefined) throw new Error(`a code_enum! without a name: ${body}`);
      const arms = [...body.matchAll(/(\w+)\s*=\s*\d+\s*=>\s*"([^"]*)"/g)];
      out.set(name, {
        variants: arms.map((a) => a[1] as string),
        strings: arms.map((a) => a[2] as string),
      });
    }
  }
  return out;
}

/** Rust `WaitStrategy`: its variants, and the strings `parse` accepts for each. */
function rustWaitStrategy(): { variants: string[]; strings: string[]; parsed: string[] } {
  const decl = findOne(rust, /pub enum WaitStrategy\s*\{/);
  const variants = variantsOf(braced(decl.text, decl.at));
  const parse = implFn(rust, 'WaitStrategy', 'parse');
  const arms = [...parse.matchAll(/"([^"]*)"\s*=>\s*Ok\(Self::(\w+)\)/g)];
  return {
    variants,
    strings: arms.map((a) => a[1] as string),
    parsed: arms.map((a) => a[2] as string),
  };
}

/** The string literals of the TypeScript union type `name` declared in `src/`. */
function tsUnion(name: string): string[] {
  const decl = findOne(ts, new RegExp(`export type ${name}\\s*=`));
  const end = decl.text.indexOf(';', decl.at);
  const rhs = decl.text.slice(decl.text.indexOf('=', decl.at) + 1, end);
  const parts = rhs
    .split('|')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  for (const p of parts) {
    if (!/^'[^']*'$/.test(p))
      throw new Error(`${decl.path}: ${name} has a part ${p} that is no string`);
  }
  return parts.map((p) => p.slice(1, -1));
}

interface Validate {
  KINDS: readonly string[];
  SYNC_MODES: readonly string[];
  POLICIES: readonly string[];
  DELIVERIES: readonly string[];
  WAIT_STRATEGIES: readonly string[];
}
interface Errors {
  fromNative(e: unknown): unknown;
  makeError(code: string, message: string): shmring.ShmringError;
}

test('the Rust ErrorCode variants and their as_str strings are the same list', (t) => {
  const { variants, strings } = rustErrorCodes();
  t.true(variants.length >= 13, `${variants}`);
  t.deepEqual([...strings.keys()], variants);
  for (const [variant, s] of strings) t.is(s, variant, `ErrorCode::${variant}.as_str()`);
});

test('TypeScript has each Rust error code, in the same order, and no other', async (t) => {
  const codes = [...rustErrorCodes().strings.values()];
  t.deepEqual(tsUnion('ErrorCode'), codes, 'the ErrorCode type of src/errors.ts');
  const errors = (await import(new URL('errors.js', dist).href)) as Errors;
  const exported = shmring as unknown as Record<string, unknown>;
  for (const code of codes) {
    const Class = exported[`${code}Error`];
    t.is(typeof Class, 'function', `shmring exports ${code}Error`);
    const e = new (Class as new (m: string) => shmring.ShmringError)('m');
    t.true(e instanceof shmring.ShmringError, `${code}Error is a ShmringError`);
    t.is(e.code as string, code);
    t.is(e.name, `${code}Error`);
    // The code the addon puts on its errors finds this class.
    const mapped = errors.fromNative(Object.assign(new Error('from Rust'), { code }));
    t.true(mapped instanceof (Class as typeof Error), `fromNative maps ${code} to ${code}Error`);
    t.true(errors.makeError(code, 'm') instanceof (Class as typeof Error));
  }
  const classes = Object.keys(exported).filter((k) => k.endsWith('Error') && k !== 'ShmringError');
  t.deepEqual(
    classes.sort(),
    codes.map((c) => `${c}Error`).sort(),
    'no error class without a code',
  );
});

test("publishMany's partial count crosses the binding as a number `published`, never as message text", async (t) => {
  // Rust: the fast path's error carries the engine's count and throws it as a property.
  const thrower = findOne(binding, /fn throw_with_count\s*\(/);
  const body = braced(thrower.text, thrower.text.indexOf(')', thrower.at));
  t.regex(body, /napi_create_error\(/, `${thrower.path}: the error is made with napi_create_error`);
  t.regex(body, /napi_set_named_property\([^)]*c"published"/, 'and given `published`');
  t.regex(body, /napi_throw\(/, 'then thrown with napi_throw');
  t.regex(findOne(binding, /impl From<shmring::Error> for Fail/).text, /e\.published\(\)/);
  // TypeScript: fromNative keeps the property, whatever the message says.
  const errors = (await import(new URL('errors.js', dist).href)) as Errors;
  const worded = 'ring full (after 99 messages of the batch were published)';
  const withCount = errors.fromNative(
    Object.assign(new Error(worded), { code: 'RingFull', published: 3 }),
  ) as shmring.ShmringError;
  t.is(withCount.published, 3, 'the property, not the message');
  const without = errors.fromNative(
    Object.assign(new Error(worded), { code: 'RingFull' }),
  ) as shmring.ShmringError;
  t.is(without.published, undefined, 'no property, no count: the message is not read');
  // And no source in src/ reads the engine's wording: it is only ever written (appended).
  for (const { path, text } of ts) {
    for (const line of uncommented(text).split('\n')) {
      if (!line.includes('messages of the batch')) continue;
      t.regex(line, /\.message \+= `/, `${path}: the wording is only appended: ${line.trim()}`);
    }
  }
});

const optionEnums = [
  { rust: 'Kind', ts: 'Kind', list: 'KINDS' },
  { rust: 'SyncMode', ts: 'SyncMode', list: 'SYNC_MODES' },
  { rust: 'Policy', ts: 'Policy', list: 'POLICIES' },
  { rust: 'Delivery', ts: 'Delivery', list: 'DELIVERIES' },
] as const;

test('the option enums of Rust and TypeScript accept the same strings', async (t) => {
  const rustEnums = rustCodeEnums();
  t.deepEqual([...rustEnums.keys()].sort(), optionEnums.map((e) => e.rust).sort());
  const validate = (await import(new URL('validate.js', dist).href)) as Validate;
  for (const e of optionEnums) {
    const r = rustEnums.get(e.rust);
    if (r === undefined) return t.fail(`no code_enum! ${e.rust} in crates/shmring/src`);
    t.is(new Set(r.strings).size, r.strings.length, `${e.rust} strings are distinct`);
    t.deepEqual(tsUnion(e.ts), r.strings, `the ${e.ts} type in src/`);
    t.deepEqual([...validate[e.list]], r.strings, `validate.ts ${e.list}`);
  }
  const w = rustWaitStrategy();
  t.deepEqual(w.parsed, w.variants, 'WaitStrategy::parse covers every variant, in order');
  t.deepEqual(
    w.strings,
    w.variants.map((v) => v.toLowerCase()),
    'WaitStrategy strings are the variant names',
  );
  t.deepEqual(tsUnion('WaitStrategy'), w.strings, 'the WaitStrategy type in src/');
  t.deepEqual([...validate.WAIT_STRATEGIES], w.strings, 'validate.ts WAIT_STRATEGIES');
});

test('open accepts every Rust option string and refuses a near miss', (t) => {
  const rustEnums = rustCodeEnums();
  const name = channelName(t, 'drift');
  for (const e of optionEnums) {
    for (const s of rustEnums.get(e.rust)?.strings ?? []) {
      // `overwrite` needs a topic, a delivery a queue; every other value goes with the defaults.
      const keys = {
        Kind: 'kind',
        SyncMode: 'sync',
        Policy: 'policy',
        Delivery: 'delivery',
      } as const;
      const key = keys[e.rust];
      const kind = key === 'delivery' ? { kind: 'queue' as const } : {};
      const ch = shmring.open(name, { create: true, exclusive: true, ...kind, [key]: s });
      t.is(ch.info()[key], s, `open ${key} ${s}`);
      ch.close();
      shmring.unlink(name);
      t.throws(
        () => shmring.open(name, { create: true, ...kind, [key]: `${s}x` } as shmring.OpenOptions),
        {
          instanceOf: shmring.InvalidArgumentError,
        },
      );
    }
  }
  for (const wait of rustWaitStrategy().strings) {
    const ch = shmring.open(name, { create: true, wait: wait as shmring.WaitStrategy });
    t.is(ch.receiveSync(0, { wait: wait as shmring.WaitStrategy }), undefined);
    ch.close();
  }
});

test('the flush settings of Rust and TypeScript are the same words and interval bound', async (t) => {
  const parse = implFn(rust, 'Flush', 'parse');
  const words = [...parse.matchAll(/"([^"]*)"\s*=>\s*Flush::(\w+)/g)];
  t.deepEqual(
    words.map((w) => w[2]),
    ['Os', 'Publish'],
    'Flush::parse maps a word to each unit variant',
  );
  const strings = words.map((w) => w[1] as string);
  const decl = findOne(ts, /export type Flush\s*=/);
  const rhs = decl.text.slice(decl.text.indexOf('=', decl.at) + 1, decl.text.indexOf(';', decl.at));
  const parts = rhs.split('|').map((p) => p.trim());
  t.deepEqual(
    parts.filter((p) => p.startsWith("'")).map((p) => p.slice(1, -1)),
    strings,
    'the Flush type in src/',
  );
  t.true(parts.includes('number'), 'the Flush type takes milliseconds');
  const validate = (await import(new URL('validate.js', dist).href)) as {
    FLUSH_SETTINGS: readonly string[];
    MAX_FLUSH_MS: number;
  };
  t.deepEqual([...validate.FLUSH_SETTINGS], strings, 'validate.ts FLUSH_SETTINGS');
  const max = findOne(
    rust,
    /pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs\((\d+)\)/,
  );
  const secs = /from_secs\((\d+)\)/.exec(max.text.slice(max.at))?.[1];
  t.is(Number(secs) * 1000, validate.MAX_FLUSH_MS, 'MAX_FLUSH_INTERVAL');
});

interface Frame {
  FRAME_PREFIX: number;
  RECORD_FRAME_PREFIX: number;
  frameBytes(payloadBytes: number, records?: boolean): number;
  frameBuffer(maxMessageSize: number): Buffer;
  FrameWalker: new (
    buffer: Buffer,
    records?: boolean,
  ) => {
    start: number;
    end: number;
    position: number;
    reset(bytes: number): void;
    next(): boolean;
  };
}
interface NativeSub {
  handle(): number;
  close(): void;
}
interface Native {
  native: {
    NativeChannel: {
      open(
        name: string,
        options: object,
      ): {
        handle(): number;
        subscribe(onReady: () => void, wait?: string, options?: object): NativeSub;
        subscribeSync(): NativeSub;
        close(): void;
      };
    };
    publish(channel: number, payload: Buffer): boolean;
    drain(subscription: number, buf: Buffer, maxCount: number): number;
    recv(subscription: number, buf: Buffer, timeoutMs: number | undefined): number;
  };
}

test('the frames the native drain and recv write are what src/frame.ts walks', async (t) => {
  const frame = (await import(new URL('frame.js', dist).href)) as Frame;
  const { native } = (await import(new URL('native.js', dist).href)) as Native;
  const nat = native.NativeChannel.open(channelName(t, 'frames'), { create: true });
  t.teardown(() => nat.close());
  const sub = nat.subscribe(() => {});
  const syncSub = nat.subscribeSync();
  t.teardown(() => {
    sub.close();
    syncSub.close();
  });
  // Lengths whose bytes differ, so that a big-endian or 2-byte length would read wrong.
  const payloads = [0, 1, 3, 258, 65_535, 65_536].map((n) =>
    Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + n) & 0xff)),
  );
  for (const p of payloads) t.true(native.publish(nat.handle(), p));
  const buf = frame.frameBuffer(64 * 1024);
  const bytes = native.drain(sub.handle(), buf, 1024);
  t.is(
    bytes,
    payloads.reduce((sum, p) => sum + frame.frameBytes(p.length), 0),
  );
  const walker = new frame.FrameWalker(buf);
  walker.reset(bytes);
  const seen: Buffer[] = [];
  while (walker.next()) seen.push(Buffer.from(buf.subarray(walker.start, walker.end)));
  t.deepEqual(seen, payloads);
  t.is(walker.end, bytes, 'the last frame ends where the batch does');
  // recv: one frame, its payload after the prefix.
  const one = Buffer.alloc(frame.frameBytes(64 * 1024));
  for (const p of payloads) {
    const len = native.recv(syncSub.handle(), one, 1000);
    t.is(len, p.length);
    t.is(one.readUInt32LE(0), p.length, 'the prefix holds the length, little-endian');
    t.deepEqual(one.subarray(frame.FRAME_PREFIX, frame.frameBytes(len)), p);
  }
});

/** The TypeScript type of each argument accessor of `Call` (`callback.rs`), and of each result. */
const accessorTypes: Record<string, string> = {
  number: 'number',
  u32: 'number',
  index: 'number',
  optional_number: 'number | undefined',
  bytes: 'Buffer',
  bytes_mut: 'Buffer',
  array_buffer: 'ArrayBuffer',
  u32s: 'Uint32Array',
};
const resultTypes: Record<string, string> = {
  boolean: 'boolean',
  number_value: 'number',
  undefined_value: 'void',
  buffer_value: 'Buffer',
};

/** The fast-path calls `fast.rs` registers: each one's arguments (name, TS type) and result. */
function rustFastPath(): Map<string, { args: [string, string][]; result: string[] }> {
  const reg = findOne(binding, /fn register_fast_path\s*\(/);
  const out = new Map<string, { args: [string, string][]; result: string[] }>();
  for (const m of braced(reg.text, reg.at).matchAll(/\(c"(\w+)",\s*(\w+)\)/g)) {
    const [, js, fn] = m as unknown as [string, string, string];
    const def = findOne(binding, new RegExp(`extern "C" fn ${fn}\\s*\\(`));
    const body = braced(def.text, def.text.indexOf(')', def.at));
    const args: [string, string][] = [];
    for (const a of body.matchAll(/\bc\.(\w+)\((\d+),\s*"(\w+)"\)/g)) {
      const [, accessor, i, name] = a as unknown as [string, string, string, string];
      args[Number(i)] = [name, accessorTypes[accessor] ?? `unknown accessor ${accessor}`];
    }
    const result = [
      ...body.matchAll(/\bc\.(boolean|number_value|undefined_value|buffer_value)\(/g),
    ].map((r) => resultTypes[r[1] as string] as string);
    out.set(js, { args, result: [...new Set(result)] });
  }
  return out;
}

/** `FastPath` of `src/native.ts`: each method's parameters (name, type) and return type. */
function tsFastPath(): Map<string, { params: [string, string][]; returns: string }> {
  const decl = findOne(ts, /export interface FastPath\s*\{/);
  const out = new Map<string, { params: [string, string][]; returns: string }>();
  for (const m of braced(decl.text, decl.at).matchAll(/(\w+)\(([^)]*)\):\s*([^;]+);/g)) {
    const [, name, params, returns] = m as unknown as [string, string, string, string];
    out.set(name, {
      params: params
        .split(',')
        .map((p) => p.trim())
        .filter((p) => p !== '')
        .map((p) => {
          const [n, ...type] = p.split(':');
          return [(n as string).trim(), type.join(':').trim()];
        }),
      returns: returns.trim(),
    });
  }
  return out;
}

test('the FastPath signatures of src/native.ts are the calls fast.rs registers', async (t) => {
  const rustCalls = rustFastPath();
  const tsCalls = tsFastPath();
  t.deepEqual([...tsCalls.keys()].sort(), [...rustCalls.keys()].sort(), 'the same calls');
  t.true(rustCalls.size >= 4, `${[...rustCalls.keys()]}`);
  // The accessors typed above are the methods of `Call`, wherever it lives in the binding.
  for (const accessor of [...Object.keys(accessorTypes), ...Object.keys(resultTypes)]) {
    t.notThrows(() => implFn(binding, 'Call', accessor), `Call::${accessor}`);
  }
  const { native } = (await import(new URL('native.js', dist).href)) as {
    native: Record<string, unknown>;
  };
  for (const [name, r] of rustCalls) {
    t.is(typeof native[name], 'function', `the addon exports ${name}`);
    const s = tsCalls.get(name);
    if (s === undefined) continue;
    t.is(s.params.length, r.args.length, `${name}: as many parameters as fast.rs reads`);
    for (const [i, [rustName, rustType]] of r.args.entries()) {
      const [tsName, tsType] = s.params[i] ?? ['(none)', '(none)'];
      t.is(tsType, rustType, `${name} parameter ${i} (${tsName}; fast.rs: ${rustName})`);
      // The handle is named after what it names on the TypeScript side.
      if (i > 0) t.is(tsName, rustName, `${name} parameter ${i}'s name`);
    }
    t.deepEqual(r.result, [s.returns], `${name} returns ${s.returns}`);
  }
});

test('frames with positions: the native prefix sizes are the ones src/frame.ts walks', async (t) => {
  const frame = (await import(new URL('frame.js', dist).href)) as Frame;
  const { native } = (await import(new URL('native.js', dist).href)) as Native;
  const rustConst = (name: string): number => {
    const hit = findOne(rust, new RegExp(`pub const ${name}: usize = (\\d+);`));
    return Number(/= (\d+);/.exec(hit.text.slice(hit.at))?.[1]);
  };
  t.is(frame.FRAME_PREFIX, rustConst('FRAME_PREFIX'));
  t.is(frame.RECORD_FRAME_PREFIX, rustConst('RECORD_FRAME_PREFIX'));
  const nat = native.NativeChannel.open(channelName(t, 'recframes'), { create: true });
  t.teardown(() => nat.close());
  const payloads = [0, 1, 3, 258, 65_535].map((n) => Buffer.alloc(n, n & 0xff));
  for (const p of payloads) t.true(native.publish(nat.handle(), p));
  const sub = nat.subscribe(() => {}, undefined, { from: 'earliest', records: true });
  t.teardown(() => sub.close());
  const buf = frame.frameBuffer(64 * 1024);
  const bytes = native.drain(sub.handle(), buf, 1024);
  t.is(
    bytes,
    payloads.reduce((sum, p) => sum + frame.frameBytes(p.length, true), 0),
  );
  const walker = new frame.FrameWalker(buf, true);
  walker.reset(bytes);
  const seen: [number, Buffer][] = [];
  while (walker.next())
    seen.push([walker.position, Buffer.from(buf.subarray(walker.start, walker.end))]);
  t.deepEqual(
    seen.map(([, p]) => p),
    payloads,
  );
  t.is(seen[0]?.[0], 0, 'the first record of a new channel is at position 0');
  t.true(
    seen.every(([pos], i) => i === 0 || pos > (seen[i - 1]?.[0] ?? 0)),
    'positions increase',
  );
});

test("settle's `how` codes are the same in fast.rs and src/acked.ts", async (t) => {
  const hits = [
    ...findOne(binding, /const SETTLE_ACK: u32/).text.matchAll(/const SETTLE_(\w+): u32 = (\d+);/g),
  ];
  const rustCodes = Object.fromEntries(hits.map((m) => [m[1] as string, Number(m[2])]));
  const acked = (await import(new URL('acked.js', dist).href)) as {
    SETTLE: Record<string, number>;
  };
  t.deepEqual(rustCodes, {
    ACK: acked.SETTLE.ack,
    NACK: acked.SETTLE.nack,
    ACK_THROUGH: acked.SETTLE.ackThrough,
  });
  t.is(new Set(Object.values(rustCodes)).size, 3, 'distinct');
});
