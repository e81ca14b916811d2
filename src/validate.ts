/**
 * Checks of every argument and option of the public API, made before anything reaches the
 * native addon or the ring: a wrong-typed or out-of-range one is an
 * {@link InvalidArgumentError} (a name: {@link InvalidNameError}) naming the option and the
 * value, never a TypeError or a napi conversion error. A `null` or `undefined` options
 * object means "no options"; a `null` option value is wrong like any other non-value.
 * @internal
 */
import { makeError, type ShmringError } from './errors.js';

/** `value` as a short, readable piece of an error message. */
export function shown(value: unknown): string {
  if (typeof value === 'string') {
    const s = value.length > 40 ? `${value.slice(0, 40)}...` : value;
    return JSON.stringify(s);
  }
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'symbol') return value.toString();
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return 'an array';
  if (value !== null && typeof value === 'object') {
    const ctor = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof ctor === 'string' && ctor !== 'Object' ? `a ${ctor}` : 'an object';
  }
  return String(value);
}

export function invalid(message: string): ShmringError {
  return makeError('InvalidArgument', message);
}

/** The options object of `call`: `{}` for `undefined` or `null`, else it must be an object. */
export function optionsOf<O extends object>(call: string, options: unknown): Partial<O> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw invalid(`${call} options must be an object, not ${shown(options)}`);
  }
  return options as Partial<O>;
}

/** Checks a channel name's type (its characters are checked natively: `InvalidName`). */
export function checkName(name: unknown): asserts name is string {
  if (typeof name !== 'string') {
    throw makeError('InvalidName', `channel name must be a string, not ${shown(name)}`);
  }
}

/** An optional boolean option. */
export function checkBoolean(call: string, key: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'boolean') {
    throw invalid(`${call} option ${key} must be true or false, not ${shown(v)}`);
  }
}

/** An optional option that is one of `choices`. */
export function checkChoice(call: string, key: string, v: unknown, choices: readonly string[]) {
  if (v !== undefined && !(typeof v === 'string' && choices.includes(v))) {
    throw invalid(
      `${call} option ${key} must be one of ${choices.map((c) => `'${c}'`).join(', ')}, not ${shown(v)}`,
    );
  }
}

/** An optional number option: a finite number (range checks follow natively). */
export function checkNumber(call: string, key: string, v: unknown): void {
  if (v !== undefined && !(typeof v === 'number' && Number.isFinite(v))) {
    throw invalid(`${call} option ${key} must be a finite number, not ${shown(v)}`);
  }
}

/** An optional function option. */
export function checkFunction(call: string, key: string, v: unknown): void {
  if (v !== undefined && typeof v !== 'function') {
    throw invalid(`${call} option ${key} must be a function, not ${shown(v)}`);
  }
}

/** An optional `AbortSignal` option. */
export function checkSignal(call: string, v: unknown): void {
  if (v !== undefined && !(v instanceof AbortSignal)) {
    throw invalid(`${call} option signal must be an AbortSignal, not ${shown(v)}`);
  }
}

/**
 * An optional timeout in milliseconds: a number >= 0 (`Infinity`, or anything from about
 * 100 years up, waits forever), not `NaN`.
 */
export function checkTimeout(what: string, v: unknown): void {
  if (v !== undefined && !(typeof v === 'number' && v >= 0)) {
    throw invalid(`${what} must be a number >= 0 (milliseconds), not ${shown(v)}`);
  }
}

/**
 * The strings each enum option accepts, in the engine's order. They are the engine's own
 * (`Kind`, `SyncMode`, `Policy`, `Delivery` in `crates/shmring/src/options.rs`, `WaitStrategy` in
 * `wait.rs`); `test/drift.test.ts` compares them, and the option types, with the Rust side.
 */
export const KINDS: readonly string[] = ['topic', 'queue'];
/** The `sync` modes (see {@link KINDS}). */
export const SYNC_MODES: readonly string[] = ['lockfree', 'semaphore'];
/** The full-ring policies (see {@link KINDS}). */
export const POLICIES: readonly string[] = ['block', 'fail', 'overwrite'];
/** The delivery promises of queues (see {@link KINDS}). */
export const DELIVERIES: readonly string[] = ['at-most-once', 'at-least-once'];
/** The wait strategies, for `wait` options (see {@link KINDS}). */
export const WAIT_STRATEGIES: readonly string[] = ['adaptive', 'spin', 'block'];

/** The flush settings that are words (the others are numbers of milliseconds). */
export const FLUSH_SETTINGS: readonly string[] = ['os', 'publish'];
/** Longest flush interval, in milliseconds (the engine's `MAX_FLUSH_INTERVAL`). */
export const MAX_FLUSH_MS = 3_600_000;

/** An optional `dir` option: an absolute path (its existence is checked natively). */
export function checkDir(call: string, v: unknown): void {
  if (v === undefined) return;
  if (typeof v !== 'string' || !v.startsWith('/') || v.includes('\0')) {
    throw invalid(
      `${call} option dir must be an absolute path (a string that starts with /), not ${shown(v)}`,
    );
  }
}

/** An optional `flush` option: `'os'`, `'publish'` or whole milliseconds from 1 to 3,600,000. */
export function checkFlush(call: string, v: unknown): void {
  if (v === undefined || (typeof v === 'string' && FLUSH_SETTINGS.includes(v))) return;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_FLUSH_MS) return;
  throw invalid(
    `${call} option flush must be 'os', 'publish' or a whole number of milliseconds from 1 to ${MAX_FLUSH_MS}, not ${shown(v)}`,
  );
}

/** The options of `list`, `unlink` and `unlinkIfStale`: `dir`. */
export function checkCatalogOptions(call: string, options: object): void {
  checkDir(call, (options as Record<string, unknown>).dir);
}

/** The options of `messages`, `iterate` and `receiveSync`: `wait` and `onLost` (and `signal`). */
export function checkSubscribeOptions(call: string, options: object): void {
  const o = options as Record<string, unknown>;
  checkChoice(call, 'wait', o.wait, WAIT_STRATEGIES);
  checkFunction(call, 'onLost', o.onLost);
  const from = o.from;
  if (
    from !== undefined &&
    from !== 'latest' &&
    from !== 'earliest' &&
    !(typeof from === 'number' && Number.isSafeInteger(from) && from >= 0)
  ) {
    throw invalid(
      `${call} option from must be 'latest', 'earliest' or a position (an integer >= 0), not ${shown(from)}`,
    );
  }
  const durable = o.durable;
  if (durable !== undefined && typeof durable !== 'string') {
    throw invalid(
      `${call} option durable must be a subscriber name (a string), not ${shown(durable)}`,
    );
  }
}

/** The options of `open` (the codec is checked by `resolveCodec`). */
export function checkOpenOptions(options: object): void {
  const o = options as Record<string, unknown>;
  for (const key of ['create', 'exclusive', 'recover', 'allowForeignOwner', 'exclusiveProducer']) {
    checkBoolean('open', key, o[key]);
  }
  checkChoice('open', 'kind', o.kind, KINDS);
  checkChoice('open', 'sync', o.sync, SYNC_MODES);
  checkChoice('open', 'policy', o.policy, POLICIES);
  checkChoice('open', 'delivery', o.delivery, DELIVERIES);
  checkChoice('open', 'wait', o.wait, WAIT_STRATEGIES);
  checkDir('open', o.dir);
  checkFlush('open', o.flush);
  for (const key of ['capacity', 'maxMessageSize', 'maxParticipants', 'ackTimeoutMs']) {
    checkNumber('open', key, o[key]);
  }
  const mode = o.mode;
  if (mode !== undefined && !(typeof mode === 'number' && Number.isInteger(mode) && mode >= 0)) {
    throw invalid(`open option mode must be permission bits such as 0o600, not ${shown(mode)}`);
  }
  if (mode !== undefined && mode > 0o777) {
    throw invalid(`open option mode ${mode.toString(8)} (octal) has bits outside 0o777`);
  }
}
