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
export { type Bridge, bridge } from './bridge/index.js';
export type { BridgeDirection, BridgeOptions } from './bridge/options.js';
export type { BridgeStats } from './bridge/stats.js';
export { list, open, unlink, unlinkIfStale } from './catalog.js';
export { Channel } from './channel.js';
export { type Codec, type CodecName, json, msgpack, raw, rawView } from './codec.js';
export {
  AlreadyExistsError,
  BusyError,
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
export type {
  CatalogOptions,
  ChannelInfo,
  ChannelListing,
  ChannelRecord,
  ChannelStats,
  ChannelSummary,
  Delivery,
  Flush,
  IterateOptions,
  Kind,
  LostCallback,
  OpenOptions,
  Participant,
  Policy,
  ReceiveOptions,
  SendOptions,
  SubscribeOptions,
  SyncMode,
  WaitStrategy,
} from './types.js';
