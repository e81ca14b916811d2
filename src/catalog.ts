/**
 * The catalog functions: `open` a channel by name, and `unlink`, `list` and `unlinkIfStale`
 * the channels of this host.
 */
import { Channel } from './channel.js';
import { resolveCodec } from './codec.js';
import { call, makeError } from './errors.js';
import { native } from './native.js';
import { summaryOf } from './summary.js';
import type { ChannelListing, OpenOptions } from './types.js';
import { checkName, checkOpenOptions, optionsOf } from './validate.js';

/**
 * Opens (attaches to, or with `create` creates) the channel `name`.
 *
 * Attaching adopts the channel's own settings; options you state are checked against them
 * and a conflict throws {@link IncompatibleSegmentError} naming both values.
 *
 * @example
 * ```ts
 * const ch = open<{ sym: string; px: number }>('quotes', { create: true });
 * ch.publish({ sym: 'ACME', px: 101.5 });
 * ```
 */
export function open<T = unknown>(name: string, options?: OpenOptions<T> | null): Channel<T> {
  checkName(name);
  const o = optionsOf<OpenOptions<T>>('open', options);
  checkOpenOptions(o);
  const { codec, wait, ...rest } = o;
  const resolved = resolveCodec<T>(codec);
  const nat = call(() => native.NativeChannel.open(name, rest));
  return new Channel<T>(name, nat, resolved, wait);
}

/**
 * Removes the channel `name`. Throws {@link NotFoundError} if there is none. Processes
 * still attached notice: their `publish` throws {@link ClosedError}, and their subscriptions
 * get what is left and then end with a {@link ClosedError}. The next `open` with `create`
 * makes a new channel under the name.
 *
 * @example
 * ```ts
 * unlink('quotes');
 * ```
 */
export function unlink(name: string): void {
  checkName(name);
  call(() => native.unlink(name));
}

/**
 * Every channel on this host (`/dev/shm/shmring.*`), sorted by name, with its settings,
 * bytes used, participants and whether it is stale (creator and all participants dead).
 * Reading a channel takes no participant slot. A file that is not a usable segment is
 * listed with its `error`.
 *
 * @example
 * ```ts
 * for (const { name, summary } of list()) {
 *   if (summary?.stale) unlink(name);
 * }
 * ```
 */
export function list(): ChannelListing[] {
  return call(() => native.list()).map((l) =>
    l.summary != null
      ? { name: l.name, summary: summaryOf(l.summary) }
      : {
          name: l.name,
          error: makeError(
            (l.errorCode ?? 'Io') as Parameters<typeof makeError>[0],
            l.errorMessage ?? 'unreadable',
          ),
        },
  );
}

/**
 * Removes the channel `name` only if it is stale (its creator and every participant are
 * dead); returns whether it did. What `shmring rm --stale` does for each channel.
 *
 * @example
 * ```ts
 * for (const { name } of list()) unlinkIfStale(name);
 * ```
 */
export function unlinkIfStale(name: string): boolean {
  checkName(name);
  return call(() => native.unlinkIfStale(name));
}
