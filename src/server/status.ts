import * as grpc from '@grpc/grpc-js';
import { TscriError, type ErrorCode } from '../errors.js';

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

export function toServiceError(err: unknown): Partial<grpc.ServiceError> {
  if (err instanceof TscriError) {
    return { code: STATUS_OF[err.code], details: err.message, message: err.message };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: grpc.status.INTERNAL, details: message, message };
}
