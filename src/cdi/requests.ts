/**
 * The CDI devices a CreateContainer asks for: `config.CDI_devices` (what the kubelet fills
 * from DRA and device plugins) first, in order, then the names in `cdi.k8s.io/*` annotations
 * (older device plugins) that the list does not already hold. A kubelet may send one device
 * both ways; that is one request, not an error.
 */
import type * as cri from '../api/cri.js';
import { invalid, quote } from '../validation/fields.js';
import { parseQualifiedName } from './names.js';
import type { CdiRequest } from './types.js';

export const CDI_ANNOTATION_PREFIX = 'cdi.k8s.io/';
/** Far more than any node has devices; bounds the work one request can cause. */
const MAX_CDI_DEVICES = 1024;

export function cdiRequestsOf(config: Pick<cri.ContainerConfig, 'CDI_devices' | 'annotations'>): CdiRequest[] {
  const requests: CdiRequest[] = [];
  const seen = new Set<string>();
  const add = (request: CdiRequest): void => {
    const parsed = parseQualifiedName(request.name);
    if ('problem' in parsed) throw invalid(request.field, `${quote(request.name)} ${parsed.problem}`);
    if (seen.has(request.name)) return;
    seen.add(request.name);
    requests.push(request);
  };
  (config.CDI_devices ?? []).forEach((device, i) => add({ name: device?.name ?? '', field: `config.CDI_devices[${i}].name`, source: 'config' }));
  // Sorted, so the order edits are applied in does not depend on how the map was sent.
  const keys = Object.keys(config.annotations ?? {}).filter((k) => k.startsWith(CDI_ANNOTATION_PREFIX)).sort();
  for (const key of keys) {
    const field = `config.annotations[${JSON.stringify(key)}]`;
    // Every element must be a name: an empty value or a stray comma is a broken request.
    for (const name of config.annotations[key]!.split(',')) add({ name, field, source: 'annotation' });
  }
  if (requests.length > MAX_CDI_DEVICES) throw invalid('config.CDI_devices', `asks for ${requests.length} CDI devices, more than ${MAX_CDI_DEVICES}`);
  return requests;
}
