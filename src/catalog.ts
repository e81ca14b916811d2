/**
 * The catalog functions: `open` a channel by name, and `unlink`, `list` and `unlinkIfStale`
 * the channels of a directory (default `$SHMRING_DIR` or `/dev/shm`).
 */
import { Channel } from './channel.js';
import { resolveCodec } from './codec.js';
import { call, makeError } from './errors.js';
import { native } from './native.js';
import { summaryOf } from './summary.js';
import type { CatalogOptions, ChannelListing, OpenOptions } from './types.js';
import { checkCatalogOptions, checkName, checkOpenOptions, optionsOf } from './validate.js';

/** The `dir` of catalog options, checked. */
function dirOf(call: string, options: CatalogOptions | null | undefined): string | undefined {
  const o = optionsOf<CatalogOptions>(call, options);
  checkCatalogOptions(call, o);
  return o.dir;
}

/**
 * Opens (attaches to, or with `create` creates) the channel `name`.
 *
 * Attaching adopts the channel's own settings; options you state are checked against them
 * and a conflict throws {@link IncompatibleSegmentError} naming both values. The channel's
 * file is `<dir>/shmring.<name>`; with a `dir` on a disk filesystem the channel is durable
 * (see {@link OpenOptions.dir} and {@link Flush}).
 *
 * @example
 * ```ts
 * const ch = open<{ sym: string; px: number }>('quotes', { create: true });
 * ch.publish({ sym: 'ACME', px: 101.5 });
 * // A durable queue on disk, flushed every 10 ms:
 * const jobs = open('jobs', { create: true, kind: 'queue', dir: '/var/lib/app', flush: 10 });
 * ```
 */
export function open<T = unknown>(name: string, options?: OpenOptions<T> | null): Channel<T> {
  checkName(name);
  const o = optionsOf<OpenOptions<T>>('open', options);
  checkOpenOptions(o);
  const { codec, wait, flush, ...rest } = o;
  const resolved = resolveCodec<T>(codec);
  const engine = flush === undefined ? rest : { ...rest, flush: String(flush) };
  const nat = call(() => native.NativeChannel.open(name, engine));
  return new Channel<T>(name, nat, resolved, wait);
}

/**
 * Removes the channel `name` (in `options.dir`, default `$SHMRING_DIR` or `/dev/shm`).
 * Throws {@link NotFoundError} if there is none. Processes
 * still attached notice: their `publish` throws {@link ClosedError}, and their subscriptions
 * get what is left and then end with a {@link ClosedError}. The next `open` with `create`
 * makes a new channel under the name.
 *
 * @example
 * ```ts
 * unlink('quotes');
 * unlink('jobs', { dir: '/var/lib/app' });
 * ```
 */
export function unlink(name: string, options?: CatalogOptions | null): void {
  checkName(name);
  const dir = dirOf('unlink', options);
  call(() => native.unlink(name, dir));
}

/**
 * Every channel in a directory (`<dir>/shmring.*`; `options.dir`, default `$SHMRING_DIR` or
 * `/dev/shm`), sorted by name, with its settings,
 * bytes used, participants and whether it is stale (creator and all participants dead).
 * Reading a channel takes no participant slot. A file that is not a usable segment is
 * listed with its `error`.
 *
 * @example
 * ```ts
 * for (const { name, summary } of list()) {
 *   if (summary?.stale) unlink(name);
 * }
 * const durable = list({ dir: '/var/lib/app' });
 * ```
 */
export function list(options?: CatalogOptions | null): ChannelListing[] {
  const dir = dirOf('list', options);
  return call(() => native.list(dir)).map((l) =>
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
 * Removes the channel `name` (in `options.dir`, default `$SHMRING_DIR` or `/dev/shm`) only
 * if it is stale (its creator and every participant are dead); returns whether it did. What
 * `shmring rm --stale` does for each channel. A durable channel whose processes have all
 * exited is stale too: this drops its messages.
 *
 * @example
 * ```ts
 * for (const { name } of list()) unlinkIfStale(name);
 * unlinkIfStale('jobs', { dir: '/var/lib/app' });
 * ```
 */
export function unlinkIfStale(name: string, options?: CatalogOptions | null): boolean {
  checkName(name);
  const dir = dirOf('unlinkIfStale', options);
  return call(() => native.unlinkIfStale(name, dir));
}
