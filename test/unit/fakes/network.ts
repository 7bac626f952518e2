/**
 * An in-memory NetworkManager for unit tests: no plugins, no netns, no root.
 *
 *   const network = new FakeNetworkManager();
 *   network.failOn('setUp', new Error('plugin failed'));   // the next setUp rejects (once)
 *   network.calls;            // [{ method: 'setUp', containerId, netnsPath }, …] in call order
 *   network.attached;         // containerId → the address handed out, while attached
 *
 * setUp hands out 10.88.0.2/16, 10.88.0.3/16, … in order and remembers the attachment;
 * tearDown forgets it and, like the real one, succeeds when nothing is attached.
 * A failed setUp leaves nothing attached (the real manager runs DEL itself then).
 * A shared `journal` array gets `network.<method> <containerId>` per call (see FakeOciRuntime).
 */
import type { Attachment, NetworkManager, NetworkStatus, SetUpResult } from '../../../src/network/cni/types.js';
import { Failures, type Failure } from './failures.js';

export type NetworkMethod = 'setUp' | 'tearDown' | 'check';

export interface NetworkCall {
  method: NetworkMethod;
  containerId: string;
  netnsPath: string;
}

export class FakeNetworkManager implements NetworkManager {
  /** Every setUp, tearDown and check, in the order made. */
  readonly calls: NetworkCall[] = [];
  /** Attached sandboxes: containerId → pod address (CIDR). */
  readonly attached = new Map<string, string>();
  /** What status() answers. */
  networkStatus: NetworkStatus = { ready: true, reason: '', message: '', networkName: 'fake', source: '/etc/cni/net.d/10-fake.conflist' };
  started = false;
  closed = false;
  private readonly failures = new Failures<NetworkMethod, string>();
  private nextHost = 2;

  constructor(private readonly options: { journal?: string[] } = {}) {}

  /**
   * Make `method` reject: with `error` once (the default), or on every call (`sticky`). A
   * function is asked per call with the sandbox id and fails the call when it returns an error.
   */
  failOn(method: NetworkMethod, failure: Failure<string>, options: { sticky?: boolean } = {}): this {
    this.failures.add(method, failure, options.sticky ?? false);
    return this;
  }

  /** The methods called, in order (optionally only those for one sandbox). */
  methods(containerId?: string): NetworkMethod[] {
    return this.calls.filter((c) => containerId === undefined || c.containerId === containerId).map((c) => c.method);
  }

  async start(): Promise<void> {
    this.started = true;
  }

  status(): NetworkStatus {
    return this.networkStatus;
  }

  async setUp(attachment: Attachment): Promise<SetUpResult> {
    this.record('setUp', attachment);
    const address = `10.88.0.${this.nextHost++}/16`;
    this.attached.set(attachment.containerId, address);
    const result = {
      cniVersion: '1.0.0',
      interfaces: [{ name: attachment.ifName, sandbox: attachment.netnsPath }],
      ips: [{ address, gateway: '10.88.0.1', interface: 0 }],
      routes: [],
      dns: {},
    };
    return { networkName: 'fake', networkSource: '/etc/cni/net.d/10-fake.conflist', result, rawResult: result };
  }

  async tearDown(attachment: Pick<Attachment, 'containerId' | 'netnsPath' | 'ifName'>): Promise<void> {
    this.record('tearDown', attachment);
    this.attached.delete(attachment.containerId);
  }

  async check(attachment: Pick<Attachment, 'containerId' | 'netnsPath' | 'ifName'>): Promise<void> {
    this.record('check', attachment);
    if (!this.attached.has(attachment.containerId)) throw new Error(`${attachment.containerId} is not attached`);
  }

  close(): void {
    this.closed = true;
  }

  /** Note the call, then throw the failure injected for it, if any. */
  private record(method: NetworkMethod, attachment: Pick<Attachment, 'containerId' | 'netnsPath'>): void {
    this.calls.push({ method, containerId: attachment.containerId, netnsPath: attachment.netnsPath });
    this.options.journal?.push(`network.${method} ${attachment.containerId}`);
    this.failures.throwIfDue(method, attachment.containerId);
  }
}
