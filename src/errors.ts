/**
 * Typed errors. Every error shmring throws is a {@link ShmringError} subclass with a stable
 * {@link ShmringError.code}, the same code the Rust crate uses.
 *
 * @example
 * ```ts
 * try {
 *   open('no-such-channel');
 * } catch (e) {
 *   if (e instanceof NotFoundError) console.log(e.code); // 'NotFound'
 * }
 * ```
 */

/**
 * The stable error codes.
 *
 * @example
 * ```ts
 * const code: ErrorCode = 'RingFull';
 * ```
 */
export type ErrorCode =
  | 'InvalidName'
  | 'InvalidArgument'
  | 'RingFull'
  | 'MessageTooLarge'
  | 'IncompatibleSegment'
  | 'CorruptSegment'
  | 'NotFound'
  | 'AlreadyExists'
  | 'PermissionDenied'
  | 'NoSpace'
  | 'Timeout'
  | 'Closed'
  | 'Busy'
  | 'Io';

/**
 * Base class of every shmring error.
 *
 * @example
 * ```ts
 * try {
 *   ch.publish(value);
 * } catch (e) {
 *   if (e instanceof ShmringError) console.error(e.code, e.message);
 * }
 * ```
 */
export class ShmringError extends Error {
  /** The stable code; switch on this rather than on the message. */
  readonly code: ErrorCode;
  /**
   * Set on an error thrown by `Channel.publishMany`: how many of its values were published
   * before the error. They are in the channel, so a retry starts at `values.slice(published)`
   * (whose first value is the one that failed).
   *
   * @example
   * ```ts
   * try { ch.publishMany(values); } catch (e) { if (e instanceof ShmringError) done = e.published ?? 0; }
   * ```
   */
  published?: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = `${code}Error`;
  }
}

/**
 * A channel name outside `[A-Za-z0-9._-]{1,200}`.
 *
 * @example
 * ```ts
 * open('a/b'); // throws InvalidNameError
 * ```
 */
export class InvalidNameError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('InvalidName', message, options);
  }
}
/**
 * An option or argument out of range.
 *
 * @example
 * ```ts
 * open('x', { create: true, capacity: 1000 }); // not a power of two
 * ```
 */
export class InvalidArgumentError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('InvalidArgument', message, options);
  }
}
/**
 * The ring is full and the policy is `fail`.
 *
 * @example
 * ```ts
 * try { ch.publish(v); } catch (e) { if (e instanceof RingFullError) dropped++; }
 * ```
 */
export class RingFullError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RingFull', message, options);
  }
}
/**
 * An encoded message larger than the channel's `maxMessageSize`.
 *
 * @example
 * ```ts
 * ch.publish('x'.repeat(1 << 20)); // throws MessageTooLargeError
 * ```
 */
export class MessageTooLargeError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MessageTooLarge', message, options);
  }
}
/**
 * The segment is not usable by this version, or differs from an option you stated.
 *
 * @example
 * ```ts
 * open('quotes', { capacity: 4096 }); // the channel was made with another capacity
 * ```
 */
export class IncompatibleSegmentError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('IncompatibleSegment', message, options);
  }
}
/**
 * The segment is damaged.
 *
 * @example
 * ```ts
 * try { open('damaged'); } catch (e) { if (e instanceof CorruptSegmentError) unlink('damaged'); }
 * ```
 */
export class CorruptSegmentError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CorruptSegment', message, options);
  }
}
/**
 * No channel of that name (and `create` was not given).
 *
 * @example
 * ```ts
 * try { open('quotes'); } catch (e) { if (e instanceof NotFoundError) open('quotes', { create: true }); }
 * ```
 */
export class NotFoundError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NotFound', message, options);
  }
}
/**
 * `exclusive` creation of a name that exists.
 *
 * @example
 * ```ts
 * open('quotes', { create: true, exclusive: true }); // throws if it exists
 * ```
 */
export class AlreadyExistsError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('AlreadyExists', message, options);
  }
}
/**
 * The operating system refused access.
 *
 * @example
 * ```ts
 * open('owned-by-root'); // a 0600 segment of another user
 * ```
 */
export class PermissionDeniedError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PermissionDenied', message, options);
  }
}
/**
 * `/dev/shm` has no room for the channel.
 *
 * @example
 * ```ts
 * open('huge', { create: true, capacity: 2 ** 36 }); // /dev/shm is too small
 * ```
 */
export class NoSpaceError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NoSpace', message, options);
  }
}
/**
 * A wait ran out of time.
 *
 * @example
 * ```ts
 * await ch.send(v, { timeoutMs: 100 }).catch((e) => e instanceof TimeoutError);
 * ```
 */
export class TimeoutError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Timeout', message, options);
  }
}
/**
 * The channel or subscription was closed.
 *
 * @example
 * ```ts
 * ch.close(); ch.publish(1); // throws ClosedError
 * ```
 */
export class ClosedError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Closed', message, options);
  }
}
/**
 * Held by others: the channel has no free participant slot, or a named subscriber of that
 * name is attached in another subscription.
 *
 * @example
 * ```ts
 * ch.messages({ durable: 'billing' }).subscribe({ error: (e) => e instanceof BusyError });
 * ```
 */
export class BusyError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Busy', message, options);
  }
}
/**
 * Any other operating system error.
 *
 * @example
 * ```ts
 * if (e instanceof IoError) console.error(e.message);
 * ```
 */
export class IoError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Io', message, options);
  }
}

const classes: Record<ErrorCode, new (m: string, o?: { cause?: unknown }) => ShmringError> = {
  InvalidName: InvalidNameError,
  InvalidArgument: InvalidArgumentError,
  RingFull: RingFullError,
  MessageTooLarge: MessageTooLargeError,
  IncompatibleSegment: IncompatibleSegmentError,
  CorruptSegment: CorruptSegmentError,
  NotFound: NotFoundError,
  AlreadyExists: AlreadyExistsError,
  PermissionDenied: PermissionDeniedError,
  NoSpace: NoSpaceError,
  Timeout: TimeoutError,
  Closed: ClosedError,
  Busy: BusyError,
  Io: IoError,
};

/** Makes the error of `code`. */
export function makeError(code: ErrorCode, message: string, cause?: unknown): ShmringError {
  return new classes[code](message, cause === undefined ? undefined : { cause });
}

/**
 * Turns an error thrown by the native addon (whose `code` is a shmring code) into its typed
 * class, keeping its `published` (the native `publishMany`'s count of the messages of its
 * batch that went in); anything else is returned unchanged.
 * @internal
 */
export function fromNative(e: unknown): unknown {
  if (e instanceof ShmringError) return e;
  const { code, published } = (e ?? {}) as { code?: unknown; published?: unknown };
  if (typeof code === 'string' && Object.hasOwn(classes, code)) {
    const typed = makeError(code as ErrorCode, (e as Error).message);
    if (typeof published === 'number') typed.published = published;
    return typed;
  }
  return e;
}

/** Runs `f`, rethrowing native errors as typed ones. @internal */
export function call<R>(f: () => R): R {
  try {
    return f();
  } catch (e) {
    throw fromNative(e);
  }
}
