import { InvalidArgumentError } from '../../errors.js';
import { quote } from '../../validation/fields.js';

export type CniArgPair = [key: string, value: string];

export interface PodIdentity {
  namespace: string;
  name: string;
  uid: string;
  /** The sandbox id, which is also CNI_CONTAINERID. */
  sandboxId: string;
}

/**
 * Render CNI_ARGS as `K=V;K=V`. Plugins split the string on ";" and each pair on "=",
 * expecting exactly two parts, so either character inside a key or a value would make
 * every plugin of the chain reject the whole string; refuse such input up front.
 */
export function buildCniArgs(pairs: ReadonlyArray<readonly [string, string]>): string {
  return pairs
    .map(([key, value]) => {
      if (key === '' || /[;=]/.test(key)) throw new InvalidArgumentError(`invalid CNI_ARGS key ${quote(key)}`);
      if (/[;=]/.test(value)) throw new InvalidArgumentError(`CNI_ARGS value of ${key} must not contain ";" or "=": ${quote(value)}`);
      return `${key}=${value}`;
    })
    .join(';');
}

/**
 * The CNI_ARGS Kubernetes network plugins expect. IgnoreUnknown comes first so that a plugin
 * without a K8S_* field of its own does not fail on the labels meant for others.
 */
export function podCniArgs(pod: PodIdentity): CniArgPair[] {
  return [
    ['IgnoreUnknown', '1'],
    ['K8S_POD_NAMESPACE', pod.namespace],
    ['K8S_POD_NAME', pod.name],
    ['K8S_POD_INFRA_CONTAINER_ID', pod.sandboxId],
    ['K8S_POD_UID', pod.uid],
  ];
}
