/**
 * Typed loader of the native addon built by `napi build` into `native/`.
 * @internal
 */
import { createRequire } from 'node:module';
import type * as Binding from '../native/binding.js';

export type {
  NativeChannel,
  NativeChannelInfo,
  NativeListing,
  NativeOpenOptions,
  NativeParticipant,
  NativeSubscribeOptions,
  NativeSubscription,
  NativeSummary,
  NativeSyncSubscription,
} from '../native/binding.js';

const require = createRequire(import.meta.url);

/**
 * The per-message calls, registered by hand in `crates/shmring-node/src/fast.rs` (plain
 * Node-API functions, so not in the generated `binding.d.ts`). Each names its producer side
 * or subscription by the `handle()` of a `NativeChannel`, `NativeSubscription` or
 * `NativeSyncSubscription`; a closed one throws a `Closed` error.
 */
export interface FastPath {
  /** Publishes one encoded message; false when the ring is full (policy `block`). */
  publish(channel: number, payload: Buffer): boolean;
  /**
   * `publish` of the message at `buf[start, end)` (no view of it made); a range outside `buf`
   * is an `InvalidArgument`.
   */
  publishRange(channel: number, buf: Buffer, start: number, end: number): boolean;
  /**
   * `publish` of the message at `buf[0, end)`, `buf` an `ArrayBuffer` (cheaper to read than a
   * `Buffer`); an `end` past `buf` is an `InvalidArgument`.
   */
  publishAt(channel: number, buf: ArrayBuffer, end: number): boolean;
  /**
   * Publishes messages packed back to back in `buf`, message `i` ending at `ends[i]`;
   * returns how many went in before the ring filled. An error of the batch (policy `fail`:
   * `RingFull`, or `MessageTooLarge`) has a number `published`: how many went in before it.
   */
  publishMany(channel: number, buf: Buffer, ends: Uint32Array): number;
  /**
   * Copies committed messages into `buf` as `[len u32 LE][payload]` frames (with positions:
   * `[len u32][flags u32][position u64][payload]`, see `src/frame.ts`), at most `maxCount`;
   * returns the bytes used (0: nothing there).
   */
  drain(subscription: number, buf: Buffer, maxCount: number): number;
  /**
   * Waits up to `timeoutMs` (forever if absent) for the next message, with the
   * subscription's wait strategy, and copies it into `buf` as one frame (as `drain`'s);
   * returns the payload's length, or -1 if none came in time. `buf` holds the largest
   * message plus the frame's prefix. Blocks the calling thread, in slices of at most 50 ms
   * between which it throws a `Closed` error if Node is ending the thread (a terminated
   * worker, or the process exiting).
   */
  recv(subscription: number, buf: Buffer, timeoutMs: number | undefined): number;
  /**
   * A named subscription consumed every message it received up to and including the one at
   * `position` (from a record frame): they are not delivered again to its name.
   */
  commit(subscription: number, position: number): void;
  /**
   * An at-least-once consumer settles deliveries (positions from record frames): `how` 0
   * acknowledges the one at `position`, 1 gives it back with every unsettled one after it,
   * 2 acknowledges every one up to and including it. Returns whether a delivery was settled.
   */
  settle(subscription: number, position: number, how: number): boolean;
  /** The SHA-1 of each message packed in `buf` (as for `publishMany`), 20 bytes each. */
  sha1Frames(buf: Buffer, ends: Uint32Array): Buffer;
}

function load(): typeof Binding & FastPath {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(
      `shmring runs on Linux x86_64 only (this is ${process.platform} ${process.arch})`,
    );
  }
  try {
    return require('../native/shmring.linux-x64-gnu.node') as typeof Binding & FastPath;
  } catch (e) {
    throw new Error(
      `shmring's native addon is missing or broken (${(e as Error).message}); run \`npm run build\``,
      { cause: e },
    );
  }
}

/** The native addon. */
export const native: typeof Binding & FastPath = load();
