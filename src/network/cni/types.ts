/**
 * The contract of tscri's CNI layer (our equivalent of libcni + go-cni).
 * The sandbox service depends only on these types; `CniNetworkManager` in
 * manager.ts is the implementation (over conf-dir.ts and chain.ts), and tests may
 * substitute a fake.
 */
import type { CniArgPair } from './args.js';

/** One entry of the `portMappings` capability, as the portmap plugin reads it. */
export interface PortMappingCapability {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP?: string;
}

/** Runtime values handed to plugins through `runtimeConfig`, each only if the plugin declares it. */
export interface CapabilityArgs {
  portMappings?: PortMappingCapability[];
  dns?: { servers?: string[]; searches?: string[]; options?: string[] };
  bandwidth?: { ingressRate?: number; ingressBurst?: number; egressRate?: number; egressBurst?: number };
  ipRanges?: Array<Array<{ subnet: string; rangeStart?: string; rangeEnd?: string; gateway?: string }>>;
  cgroupPath?: string;
}

/** Everything that identifies one attachment of a pod to the network. */
export interface Attachment {
  /** The sandbox id: CNI_CONTAINERID. */
  containerId: string;
  /** Path of the pod's network namespace: CNI_NETNS. */
  netnsPath: string;
  /** Interface name inside the pod: CNI_IFNAME (eth0). */
  ifName: string;
  /** CNI_ARGS as ordered key/value pairs (IgnoreUnknown first, then the K8S_* labels). */
  args: CniArgPair[];
  capabilityArgs: CapabilityArgs;
}

/** What names an attachment: enough for CHECK, which takes the rest from the cache. */
export type AttachmentRef = Pick<Attachment, 'containerId' | 'netnsPath' | 'ifName'>;

/** What DEL is given: the attachment's name, and its args when the caller still has them. */
export type TeardownAttachment = AttachmentRef & Partial<Attachment>;

/** An IP configuration, normalised to the CNI 1.0.0 result shape. */
export interface IpConfig {
  /** CIDR notation, e.g. 10.88.0.5/16. */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface InterfaceInfo {
  name: string;
  mac?: string;
  /** The netns path for interfaces inside the pod; absent for host-side ones. */
  sandbox?: string;
}

export interface Route {
  dst: string;
  gw?: string;
}

export interface DnsInfo {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}

/** The final result of an ADD, converted to CNI 1.0.0 whatever version the plugin spoke. */
export interface NetworkResult {
  cniVersion: string;
  interfaces: InterfaceInfo[];
  ips: IpConfig[];
  routes: Route[];
  dns: DnsInfo;
}

/** What the sandbox service keeps after a successful ADD. */
export interface SetUpResult {
  networkName: string;
  /** Config file the network came from, for PodSandboxStatus verbose info. */
  networkSource: string;
  result: NetworkResult;
  /** The result exactly as the last plugin printed it. */
  rawResult: unknown;
}

export interface NetworkStatus {
  ready: boolean;
  /** Machine-readable reason when not ready (e.g. NetworkPluginNotReady). */
  reason: string;
  /** Human-readable detail when not ready. */
  message: string;
  networkName?: string;
  /** The file the loaded network came from. */
  source?: string;
}

/** The CNI layer as the rest of tscri uses it. */
export interface NetworkManager {
  /** Load the network from the conf dir and start watching it for changes. */
  start(): Promise<void>;
  /** Readiness for the NetworkReady condition. */
  status(): NetworkStatus;
  /**
   * Run the ADD chain. The config and attachment are cached on disk before the first plugin
   * runs, and the result after the last; on failure the chain is deleted again and the
   * plugin's error (code, msg, details) is thrown as a CniPluginError.
   */
  setUp(attachment: Attachment): Promise<SetUpResult>;
  /**
   * Run the DEL chain in reverse, with the cached config and args when a cache entry exists
   * (so DEL works after a restart or a config change), tolerant of a missing netns and of a
   * missing cache entry. Removes the cache entry on success.
   */
  tearDown(attachment: TeardownAttachment): Promise<void>;
  /** Run the CHECK chain against the cached result. */
  check(attachment: AttachmentRef): Promise<void>;
  /** Stop watching the conf dir. */
  close(): void;
}
