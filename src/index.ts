/**
 * shmring — a message bus between processes on one Linux host, on lock-free ring buffers in
 * POSIX shared memory. A channel is an RxJS Observable of msgpack-encoded values.
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
  type ChannelStats,
  type Kind,
  type OpenOptions,
  open,
  type Participant,
  type Policy,
  type SendOptions,
  type SyncMode,
  unlink,
} from './channel.js';
export { type Codec, msgpack } from './codec.js';
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
