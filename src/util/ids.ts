import { randomBytes, randomUUID } from 'node:crypto';

/** A 64-hex-digit id for sandboxes and containers, the form kubelet and crictl expect. */
export function newId(): string {
  return randomBytes(32).toString('hex');
}

export function newUuid(): string {
  return randomUUID();
}
