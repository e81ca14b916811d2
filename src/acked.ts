/**
 * At-least-once queues on the JavaScript side (see `docs/ARCHITECTURE.md`, "Acknowledged
 * queues"): the records `records()` and `receiveSync` hand out, settled with `ack`/`nack`
 * through the fast-path `settle`, and what `messages()` and `iterate()` use to settle what
 * their handlers finished with.
 *
 * The engine hands a consumer one batch at a time and takes the next only once every
 * delivery of the batch is settled (it keeps the unsettled ones on record in the segment, so
 * that they go to another consumer if this one dies). So each stream settles a batch before
 * it drains the next: `messages()` once its handlers returned, `records()` once the user
 * settled every record of it.
 * @internal
 */
import { fromNative } from './errors.js';
import { native } from './native.js';
import type { ChannelRecord } from './types.js';

/**
 * `settle`'s `how` (the `SETTLE_*` constants of `crates/shmring-node/src/fast.rs`;
 * `test/drift.test.ts` compares them): acknowledge one delivery, give one back with every
 * unsettled one after it, acknowledge every one up to and including one.
 */
export const SETTLE = { ack: 0, nack: 1, ackThrough: 2 } as const;

let uncaught = 0;
let watching = false;

/**
 * How many uncaught exceptions this process has seen since the first call (it starts
 * watching then, with `uncaughtExceptionMonitor`, which changes nothing else). RxJS reports
 * an error thrown by a `subscribe` handler on a timer of its own, never to the stream; a
 * stream that settles on a later timer compares this count to tell a batch whose handler
 * threw (given back) from one whose handlers all returned (acknowledged).
 */
export function uncaughtSeen(): number {
  if (!watching) {
    watching = true;
    process.on('uncaughtExceptionMonitor', () => {
      uncaught += 1;
    });
  }
  return uncaught;
}

/**
 * Settles deliveries of the subscription `handle`; false if there was nothing to settle,
 * also when the subscription is closed (what it held went back to the queue then).
 */
export function settle(handle: number, position: number, how: number): boolean {
  try {
    return native.settle(handle, position, how);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'Closed') return false;
    throw fromNative(e);
  }
}

/** Settles one record of a batch (see {@link Batch} and the sync receiver). */
export interface Settler {
  settle(index: number, how: number): boolean;
}

/**
 * The records of one drained batch of a `records()` stream: which are still unsettled, so
 * that the stream drains the next batch (or closes) once none is.
 */
export class Batch implements Settler {
  readonly #positions: number[] = [];
  readonly #open: boolean[] = [];
  #unsettled = 0;
  /** All records of the batch were added: `onSettled` may run. */
  #sealed = false;
  #fired = false;
  #nacked = false;

  /** `handle`: the subscription's; `onSettled` runs once, when every record is settled. */
  constructor(
    readonly handle: number,
    readonly onSettled: () => void,
  ) {}

  /** Adds the next record; returns its index. */
  add(position: number): number {
    this.#positions.push(position);
    this.#open.push(true);
    this.#unsettled += 1;
    return this.#positions.length - 1;
  }

  /** Every record was added (a settled batch then calls `onSettled`). */
  seal(): void {
    this.#sealed = true;
    this.#check();
  }

  get unsettled(): number {
    return this.#unsettled;
  }

  /** A record of the batch was given back (`nack`): the engine gave back all after it too. */
  get nacked(): boolean {
    return this.#nacked;
  }

  /** Marks every record from `index` on settled, as a `nack` of it does in the engine. */
  #closeFrom(index: number): void {
    for (let j = index; j < this.#open.length; j++) {
      if (this.#open[j]) {
        this.#open[j] = false;
        this.#unsettled -= 1;
      }
    }
  }

  settle(index: number, how: number): boolean {
    if (!this.#open[index]) return false;
    if (how === SETTLE.nack) {
      this.#nacked = true;
      this.#closeFrom(index);
    } else {
      this.#open[index] = false;
      this.#unsettled -= 1;
    }
    let done = false;
    try {
      done = settle(this.handle, this.#positions[index] as number, how);
    } finally {
      this.#check();
    }
    return done;
  }

  /** Gives back every unsettled record (a handler threw, or the stream ended). */
  returnAll(): void {
    const first = this.#open.indexOf(true);
    if (first >= 0) this.settle(first, SETTLE.nack);
  }

  #check(): void {
    if (this.#sealed && this.#unsettled === 0 && !this.#fired) {
      this.#fired = true;
      this.onSettled();
    }
  }
}

/** A delivery of an at-least-once queue (`records()`, `receiveSync`). */
export class Delivered<T> implements ChannelRecord<T> {
  constructor(
    readonly value: T,
    readonly position: number,
    readonly deliveries: number,
    readonly settler: Settler,
    readonly index: number,
  ) {}

  get redelivered(): boolean {
    return this.deliveries > 1;
  }

  ack(): boolean {
    return this.settler.settle(this.index, SETTLE.ack);
  }

  nack(): boolean {
    return this.settler.settle(this.index, SETTLE.nack);
  }
}

/**
 * What the records of other channels inherit: nothing to settle. Their own properties are
 * `value` and `position` alone, so they compare and print as `{ value, position }`.
 */
const UNSETTLED: Omit<ChannelRecord<unknown>, 'value' | 'position'> = Object.freeze({
  redelivered: false,
  deliveries: 1,
  ack: () => false,
  nack: () => false,
});

/** A record of a channel that is not an at-least-once queue. */
export function plainRecord<T>(value: T, position: number): ChannelRecord<T> {
  const r = Object.create(UNSETTLED) as { value: T; position: number };
  r.value = value;
  r.position = position;
  return r as ChannelRecord<T>;
}
