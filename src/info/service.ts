import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import type { Config } from '../config/config.js';
import type { NetworkManager } from '../network/cni/types.js';
import type { RuntimeHandler, RuntimeHandlers } from '../oci/handlers.js';
import type { SetAsideRecord } from '../persistence/records.js';
import { KUBE_RUNTIME_API_VERSION, RUNTIME_API_VERSION, RUNTIME_NAME, TSCRI_VERSION } from '../version.js';

/** Version, readiness conditions and runtime-wide configuration. */
export class RuntimeInfoService {
  private podCidr = '';

  constructor(
    private readonly config: Config,
    private readonly network: NetworkManager,
    private readonly handlers: RuntimeHandlers,
    /** Records recovery found invalid and moved aside (shown in verbose status). */
    private readonly setAsideRecords: () => readonly SetAsideRecord[] = () => [],
  ) {}

  version(): wire.VersionResponse {
    return {
      version: KUBE_RUNTIME_API_VERSION,
      runtime_name: RUNTIME_NAME,
      runtime_version: TSCRI_VERSION,
      runtime_api_version: RUNTIME_API_VERSION,
    };
  }

  /** RuntimeReady is true while the daemon serves; NetworkReady follows the CNI layer. */
  status(verbose: boolean): wire.StatusResponse {
    const network = this.network.status();
    const response: wire.StatusResponse = {
      status: {
        conditions: [
          { type: 'RuntimeReady', status: true, reason: '', message: '' },
          { type: 'NetworkReady', status: network.ready, reason: network.reason, message: network.message },
        ],
      },
      runtime_handlers: this.runtimeHandlers(),
      // Strict and Merge are both applied (container/service.ts), and ContainerStatus.user says
      // which groups the process got.
      features: { supplemental_groups_policy: true, user_namespaces_host_network: false },
    };
    if (verbose) {
      response.info = {
        config: JSON.stringify(this.config),
        network: JSON.stringify(network),
        version: JSON.stringify({ tscri: TSCRI_VERSION, node: process.version }),
        podCidr: this.podCidr,
        setAsideRecords: JSON.stringify(this.setAsideRecords()),
        runtimeHandlers: JSON.stringify(this.handlers.all().map(describeHandler)),
      };
    }
    return response;
  }

  /**
   * The handlers pods can use, by name, and the default once more under "" (pods without a
   * RuntimeClass): the kubelet looks a pod's handler up here to learn what it supports. One
   * that cannot run containers on this node is left out, as if it were not configured.
   */
  private runtimeHandlers(): wire.RuntimeHandler[] {
    const usable = this.handlers.all().filter((handler) => !handler.unusable);
    const listed = usable.map((handler) => ({ name: handler.name, features: featuresOf(handler) }));
    const fallback = usable.find((handler) => handler.name === this.handlers.defaultName);
    if (fallback) listed.push({ name: '', features: featuresOf(fallback) });
    return listed.sort((a, b) => a.name.localeCompare(b.name));
  }

  runtimeConfig(): wire.RuntimeConfigResponse {
    return { linux: { cgroup_driver: this.config.cgroupDriver === 'systemd' ? 'SYSTEMD' : 'CGROUPFS' } };
  }

  /**
   * kubelet reports the node's pod CIDR here. The CNI config in conf_dir decides addresses,
   * so tscri only keeps it for `info`.
   */
  updateRuntimeConfig(request: cri.UpdateRuntimeConfigRequest): wire.UpdateRuntimeConfigResponse {
    this.podCidr = request.runtime_config?.network_config?.pod_cidr ?? '';
    return {};
  }
}

function featuresOf(handler: RuntimeHandler): wire.RuntimeHandlerFeatures {
  return { recursive_read_only_mounts: handler.features.recursiveReadOnlyMounts, user_namespaces: handler.features.userNamespaces };
}

/** A handler as verbose Status shows it to an operator. */
function describeHandler(handler: RuntimeHandler): Record<string, unknown> {
  const { name, cli, version, features, unusable } = handler;
  return { name, binary: cli.binary, root: cli.root, version, features, ...(unusable ? { unusable } : {}) };
}
