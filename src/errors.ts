/**
 * Typed errors used by every service. Services throw these; the gRPC layer maps
 * `code` to a status in one place (server/status.ts), so no service imports gRPC.
 */

export type ErrorCode =
  | 'InvalidArgument'
  | 'NotFound'
  | 'AlreadyExists'
  | 'FailedPrecondition'
  | 'DeadlineExceeded'
  | 'Canceled'
  | 'Unimplemented'
  | 'Unavailable'
  | 'ResourceExhausted'
  | 'Internal';

export interface ErrorOptions {
  /** What an operator can do about it; shown in logs, never used for control flow. */
  hint?: string;
  cause?: unknown;
}

export class TscriError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
  }

  override get name(): string {
    return `${this.code}Error`;
  }
}

/** The base of the classes below: a TscriError whose code is fixed by its class. */
function withCode(code: ErrorCode) {
  return class extends TscriError {
    constructor(message: string, options?: ErrorOptions) {
      super(code, message, options);
    }
  };
}

/** A request is malformed: missing metadata, an unparsable reference, a bad filter. */
export class InvalidArgumentError extends withCode('InvalidArgument') {}

/** An id, name or image that does not exist. */
export class NotFoundError extends withCode('NotFound') {}

/** A name reservation or object that already exists. */
export class AlreadyExistsError extends withCode('AlreadyExists') {}

/** The object exists but is in the wrong state for the request (start a running container, …). */
export class FailedPreconditionError extends withCode('FailedPrecondition') {}

/** A caller-supplied timeout ran out (ExecSync, StopContainer waits, …). */
export class DeadlineExceededError extends withCode('DeadlineExceeded') {}

/** The client cancelled the call (or its deadline passed) before the answer. */
export class CanceledError extends withCode('Canceled') {}

/** An RPC tscri does not serve (yet). */
export class UnimplementedError extends withCode('Unimplemented') {}

/** A dependency is temporarily unusable: the daemon is starting, a registry is unreachable. */
export class UnavailableError extends withCode('Unavailable') {}

/** Anything else: a runc, conmon or CNI failure; the message carries the underlying cause. */
export class InternalError extends withCode('Internal') {}

/** Codes that name the client's mistake: the daemon did its job by refusing. */
const CLIENT_MISTAKES: ReadonlySet<ErrorCode> = new Set(['InvalidArgument', 'NotFound', 'AlreadyExists', 'FailedPrecondition', 'Unimplemented']);

/**
 * The level a failure is logged at, one per outcome, so that `level>=error` finds only what
 * needs an operator: a refused request is info, a call that ran out of time or capacity (or
 * was cancelled) is warn, a failure of the runtime (runc, conmon, CNI, a bug) is error.
 */
export function logLevelOf(err: unknown): 'info' | 'warn' | 'error' {
  if (!(err instanceof TscriError)) return 'error';
  if (CLIENT_MISTAKES.has(err.code)) return 'info';
  return err.code === 'Internal' ? 'error' : 'warn';
}

/** The message of any thrown value, for logs and wrapped errors. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Node's errno code (ENOENT, EEXIST, …) of a thrown value, if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
