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

/** The stable error codes. */
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
  | 'Io';

/** Base class of every shmring error. */
export class ShmringError extends Error {
  /** The stable code; switch on this rather than on the message. */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = `${code}Error`;
  }
}

/** A channel name outside `[A-Za-z0-9._-]{1,200}`. */
export class InvalidNameError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('InvalidName', message, options);
  }
}
/** An option or argument out of range. */
export class InvalidArgumentError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('InvalidArgument', message, options);
  }
}
/** The ring is full and the policy is `fail`. */
export class RingFullError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('RingFull', message, options);
  }
}
/** An encoded message larger than the channel's `maxMessageSize`. */
export class MessageTooLargeError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('MessageTooLarge', message, options);
  }
}
/** The segment is not usable by this version, or differs from an option you stated. */
export class IncompatibleSegmentError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('IncompatibleSegment', message, options);
  }
}
/** The segment is damaged. */
export class CorruptSegmentError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('CorruptSegment', message, options);
  }
}
/** No channel of that name (and `create` was not given). */
export class NotFoundError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NotFound', message, options);
  }
}
/** `exclusive` creation of a name that exists. */
export class AlreadyExistsError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('AlreadyExists', message, options);
  }
}
/** The operating system refused access. */
export class PermissionDeniedError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('PermissionDenied', message, options);
  }
}
/** `/dev/shm` has no room for the channel. */
export class NoSpaceError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('NoSpace', message, options);
  }
}
/** A wait ran out of time. */
export class TimeoutError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Timeout', message, options);
  }
}
/** The channel or subscription was closed. */
export class ClosedError extends ShmringError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Closed', message, options);
  }
}
/** Any other operating system error. */
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
  Io: IoError,
};

/** Makes the error of `code`. */
export function makeError(code: ErrorCode, message: string, cause?: unknown): ShmringError {
  return new classes[code](message, cause === undefined ? undefined : { cause });
}

/**
 * Turns an error thrown by the native addon (whose `code` is a shmring code) into its typed
 * class; anything else is returned unchanged.
 * @internal
 */
export function fromNative(e: unknown): unknown {
  if (e instanceof ShmringError) return e;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && Object.hasOwn(classes, code)) {
    return makeError(code as ErrorCode, (e as Error).message);
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
