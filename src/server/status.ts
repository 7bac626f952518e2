import * as grpc from '@grpc/grpc-js';
import { TscriError, type ErrorCode } from '../errors.js';
import { shorten } from '../util/text.js';

/** The one place where tscri's typed errors become gRPC status codes. */
const STATUS_OF: Record<ErrorCode, grpc.status> = {
  InvalidArgument: grpc.status.INVALID_ARGUMENT,
  NotFound: grpc.status.NOT_FOUND,
  AlreadyExists: grpc.status.ALREADY_EXISTS,
  FailedPrecondition: grpc.status.FAILED_PRECONDITION,
  DeadlineExceeded: grpc.status.DEADLINE_EXCEEDED,
  Canceled: grpc.status.CANCELLED,
  Unimplemented: grpc.status.UNIMPLEMENTED,
  Unavailable: grpc.status.UNAVAILABLE,
  ResourceExhausted: grpc.status.RESOURCE_EXHAUSTED,
  Internal: grpc.status.INTERNAL,
};

/**
 * The longest status message sent. Messages quote what clients, registries and plugins sent
 * only in short excerpts, but a message built from many parts still must not grow without
 * bound: grpc-js clients drop a status whose headers pass ~80 KB and report a bare error.
 */
export const MAX_STATUS_MESSAGE_CHARS = 4096;

export function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  const code = err instanceof TscriError ? STATUS_OF[err.code] : grpc.status.INTERNAL;
  const full = err instanceof Error ? err.message : String(err);
  const message = shorten(full, MAX_STATUS_MESSAGE_CHARS);
  return { code, details: message, message };
}
