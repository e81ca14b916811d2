/**
 * The channel's `receiveSync` subscription (blocking, for worker threads): one participant
 * slot, made by the first call. `Channel` delegates here; the public docs are on its method.
 * @internal
 */
import { Delivered, plainRecord, settle } from './acked.js';
import { call } from './errors.js';
import { flagsAt, frameBytes, positionAt, RECORD_FRAME_PREFIX } from './frame.js';
import { type NativeSyncSubscription, native } from './native.js';
import { mayLose, nativeOptions, reportLost, type Source } from './subscribe.js';
import type { ChannelRecord, ReceiveOptions, WaitStrategy } from './types.js';
import { checkSubscribeOptions, checkTimeout, invalid, optionsOf } from './validate.js';

/** What a `receiveSync` without options reads its options from. */
const NO_OPTIONS: Partial<ReceiveOptions> = Object.freeze({});

/** The channel's `receiveSync` subscription, made by the first call. */
export class SyncReceiver<T> {
  readonly #src: Source<T>;
  #sub: NativeSyncSubscription | undefined;
  #handle = -1;
  #buf: Buffer | undefined;
  /** The wait strategy the subscription was last given. */
  #wait: WaitStrategy | undefined;
  /** The named subscriber the subscription joined as, if any. */
  #durable: string | undefined;
  /** Whether the subscription may count losses. */
  #counting = false;
  /** Messages the subscription had lost as of the last call. */
  #lost = 0;
  /** Receive calls made: a delivery can be settled only until the next one. */
  #serial = 0;

  constructor(src: Source<T>) {
    this.#src = src;
  }

  /** `Channel.receiveSync`. */
  receive(
    timeoutMs: number | undefined,
    options: ReceiveOptions | null | undefined,
  ): ChannelRecord<T> | undefined {
    const nat = this.#src.open();
    checkTimeout('receiveSync timeoutMs', timeoutMs);
    // No options (the usual call): nothing to check, and no empty object made per call.
    const o = options == null ? NO_OPTIONS : optionsOf<ReceiveOptions>('receiveSync', options);
    if (o !== NO_OPTIONS) checkSubscribeOptions('receiveSync', o);
    const wait = o.wait ?? this.#src.wait ?? 'adaptive';
    if (this.#sub === undefined) {
      // Frames with positions: the result carries the record's.
      const opts = nativeOptions(o, true);
      this.#sub = call(() => nat.subscribeSync(wait, opts));
      this.#handle = this.#sub.handle();
      this.#wait = wait;
      this.#durable = o.durable;
      this.#counting = mayLose(this.#src, o);
    } else if (o.durable !== undefined && o.durable !== this.#durable) {
      throw invalid(
        `receiveSync's subscription joined as ${this.#durable === undefined ? 'an unnamed subscriber' : `named subscriber ${JSON.stringify(this.#durable)}`}, not ${JSON.stringify(o.durable)}`,
      );
    }
    const sub = this.#sub;
    if (wait !== this.#wait) {
      call(() => sub.setWait(wait));
      this.#wait = wait;
    }
    if (this.#buf === undefined) {
      // One frame; zero-filled and never from the shared pool (see `frameBuffer`).
      this.#buf = Buffer.alloc(frameBytes(this.#src.maxMessageSize, true));
    }
    const buf = this.#buf;
    const handle = this.#handle;
    // The delivery before this one is settled now (the engine acknowledges it if it was not).
    this.#serial += 1;
    const len = call(() => native.recv(handle, buf, timeoutMs));
    if (this.#counting) this.#lost = reportLost(sub.lost(), this.#lost, o.onLost);
    if (len < 0) return undefined;
    const value = this.#src.decode(buf, RECORD_FRAME_PREFIX, frameBytes(len, true));
    const position = positionAt(buf, 0);
    if (!this.#src.acked) return plainRecord(value, position);
    const serial = this.#serial;
    let open = true;
    const settler = {
      settle: (_: number, how: number): boolean => {
        if (!open || serial !== this.#serial || this.#sub === undefined) return false;
        open = false;
        return settle(handle, position, how);
      },
    };
    return new Delivered(value, position, Math.max(1, flagsAt(buf, 0)), settler, 0);
  }

  /** Releases the subscription's slot (the channel's `close`). */
  close(): void {
    this.#sub?.close();
    this.#sub = undefined;
  }
}
