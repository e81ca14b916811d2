/**
 * shmring — a message bus between processes on one Linux host, on lock-free ring buffers in
 * POSIX shared memory. A channel is an RxJS Observable (or an async iterator) of values,
 * msgpack-encoded by default.
 *
 * @example
 * ```ts
 * import { open } from 'shmring';
 * const ch = open<{ n: number }>('numbers', { create: true });
 * ch.messages().subscribe((m) => console.log(m.n));
 * ch.publish({ n: 1 });
 * ```
 * @packageDocumentation
 */
export {
  Channel,
  type ChannelInfo,
  type ChannelListing,
  type ChannelStats,
  type ChannelSummary,
  type IterateOptions,
  type Kind,
  type LostCallback,
  list,
  type OpenOptions,
  open,
  type Participant,
  type Policy,
  type ReceiveOptions,
  type SendOptions,
  type SubscribeOptions,
  type SyncMode,
  unlink,
  unlinkIfStale,
  type WaitStrategy,
} from './channel.js';
export { type Codec, type CodecName, json, msgpack, raw, rawView } from './codec.js';
export {
  AlreadyExistsError,
  ClosedError,
  CorruptSegmentError,
  type ErrorCode,
  IncompatibleSegmentError,
  InvalidArgumentError,
  InvalidNameError,
  IoError,
  MessageTooLargeError,
  NoSpaceError,
  NotFoundError,
  PermissionDeniedError,
  RingFullError,
  ShmringError,
  TimeoutError,
} from './errors.js';
