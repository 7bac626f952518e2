import type * as cri from '../api/cri.js';
import { rfc3339 } from './output.js';
import { messageToJson } from './proto-json.js';

/**
 * Statuses as `inspect` and `inspectp` show them: protojson, with the times a person reads
 * as RFC 3339 instead of nanoseconds. As crictl does, a container not started yet has the
 * zero time as startedAt, and one that has not finished the zero time as finishedAt.
 */
export function containerStatusJson(status: cri.ContainerStatus): Record<string, unknown> {
  const finished = status.state === 'CONTAINER_EXITED' || (status.state === 'CONTAINER_UNKNOWN' && BigInt(status.finished_at || 0) > 0n);
  return {
    ...asObject(messageToJson('ContainerStatus', status)),
    createdAt: rfc3339(status.created_at || 0),
    startedAt: status.state === 'CONTAINER_CREATED' ? rfc3339(0) : rfc3339(status.started_at || 0),
    finishedAt: finished ? rfc3339(status.finished_at || 0) : rfc3339(0),
  };
}

export function sandboxStatusJson(status: cri.PodSandboxStatus): Record<string, unknown> {
  return { ...asObject(messageToJson('PodSandboxStatus', status)), createdAt: rfc3339(status.created_at || 0) };
}

function asObject(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
}
