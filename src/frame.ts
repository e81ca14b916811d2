/**
 * The frames in which the native calls hand messages to JS: the drain writes a batch of
 * them back to back into a buffer, and `recv` writes one, each message as
 * `[length: u32 little-endian][payload]`, or, for subscriptions that want positions (records
 * and named subscribers), `[length: u32][flags: u32][position: u64][payload]`, all
 * little-endian. This module is the only place in `src/` that knows those shapes;
 * `test/drift.test.ts` checks them against what the native side writes.
 * @internal
 */

/** Bytes of the length prefix before each payload: a `u32`, little-endian. */
export const FRAME_PREFIX = 4;
/** Bytes before each payload in a frame with its position: length, flags, position. */
export const RECORD_FRAME_PREFIX = 16;

/** Bytes a frame of a message of `payloadBytes` bytes takes (`records`: with its position). */
export function frameBytes(payloadBytes: number, records = false): number {
  return (records ? RECORD_FRAME_PREFIX : FRAME_PREFIX) + payloadBytes;
}

/** The position in a record frame starting at `at` (exact below 2^53). */
export function positionAt(buffer: Buffer, at: number): number {
  return buffer.readUInt32LE(at + 8) + buffer.readUInt32LE(at + 12) * 0x1_0000_0000;
}

/**
 * The flags word in a record frame starting at `at`: on an at-least-once queue, how many
 * times the message has been delivered, this time included (else 0).
 */
export function flagsAt(buffer: Buffer, at: number): number {
  return buffer.readUInt32LE(at + 4);
}

/**
 * A frame buffer for draining: a batch of frames, or at least one message of any size. Each
 * subscription has its own, zero-filled (`Buffer.alloc`, never from Node's shared pool), so
 * a `rawView` view's `buffer` holds only this subscription's frames.
 */
export function frameBuffer(maxMessageSize: number): Buffer {
  return Buffer.alloc(Math.max(256 * 1024, frameBytes(maxMessageSize, true)));
}

/**
 * Walks the frames of one drained batch in `buffer`, one per {@link FrameWalker.next}, which
 * sets {@link FrameWalker.start} and {@link FrameWalker.end} to the payload's bounds. One
 * walker serves a subscription for its life: {@link FrameWalker.reset} starts each batch.
 *
 * @example
 * ```ts
 * const frames = new FrameWalker(buf);
 * frames.reset(native.drain(h, buf, 1024));
 * while (frames.next()) handle(buf.subarray(frames.start, frames.end));
 * ```
 */
export class FrameWalker {
  /** Where the current frame's payload starts in {@link FrameWalker.buffer}. */
  start = 0;
  /** Where the current frame's payload ends (and the next frame starts). */
  end = 0;
  /** Record frames: the current record's position (else 0). */
  position = 0;
  /** Record frames: the current record's flags word ({@link flagsAt}; else 0). */
  flags = 0;
  /** The next frame's offset. */
  #at = 0;
  /** The batch's length in bytes. */
  #bytes = 0;

  /** Bytes before each payload: {@link FRAME_PREFIX}, or {@link RECORD_FRAME_PREFIX}. */
  readonly #prefix: number;

  /** `records`: the frames carry positions ({@link RECORD_FRAME_PREFIX}). */
  constructor(
    readonly buffer: Buffer,
    readonly records = false,
  ) {
    this.#prefix = records ? RECORD_FRAME_PREFIX : FRAME_PREFIX;
  }

  /** Starts over on a batch of `bytes` bytes at the start of the buffer (0: no frames). */
  reset(bytes: number): void {
    this.#at = 0;
    this.#bytes = bytes;
  }

  /** Moves to the next frame and returns true, or returns false at the end of the batch. */
  next(): boolean {
    const at = this.#at;
    if (at >= this.#bytes) return false;
    if (this.records) {
      this.position = positionAt(this.buffer, at);
      this.flags = flagsAt(this.buffer, at);
    }
    this.start = at + this.#prefix;
    this.end = this.start + this.buffer.readUInt32LE(at);
    this.#at = this.end;
    return true;
  }
}
