import type { Logger } from 'pino';
import type * as cri from '../api/cri.js';
import type * as wire from '../api/wire.js';
import type { Config } from '../config/config.js';
import { criStateOf } from '../container/container.js';
import type { ContainerService } from '../container/service.js';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { dialInPod } from '../network/dial.js';
import type { OciRuntime } from '../oci/runtime.js';
import { criStateOf as sandboxStateOf } from '../sandbox/sandbox.js';
import type { SandboxService } from '../sandbox/service.js';
import { validateExecCommand } from '../container/validate.js';
import { checkList, checkNumber } from '../validation/fields.js';
import type { Dialer } from './port-forward.js';
import type { RemoteCommandSession } from './remote-command.js';
import { StreamingServer, type PodNames, type StreamRequest, type StreamingBackend } from './server.js';

/** Streaming requests wait in memory for their client (up to 1000 of them): keep each small. */
const MAX_STREAMING_COMMAND_BYTES = 64 * 1024;
const MAX_FORWARDED_PORTS = 64;

export interface StreamingServiceDeps {
  config: Config;
  containers: ContainerService;
  sandboxes: SandboxService;
  runtime: OciRuntime;
  log: Logger;
}

/**
 * Exec, Attach and PortForward: validate the request, keep it under a token, and answer with
 * the streaming server's URL; when the client connects, run it against the container.
 */
export class StreamingService implements StreamingBackend {
  private readonly server: StreamingServer;

  constructor(private readonly deps: StreamingServiceDeps) {
    const { address, port, tokenTtlSeconds } = deps.config.streaming;
    this.server = new StreamingServer(address, port, tokenTtlSeconds, this, deps.log);
  }

  listen(): Promise<void> {
    return this.server.listen();
  }

  close(): Promise<void> {
    return this.server.close();
  }

  /** Exec: check the request and return the URL its client connects to. */
  prepareExec(request: cri.ExecRequest): wire.ExecResponse {
    validateExecCommand('cmd', request.cmd, MAX_STREAMING_COMMAND_BYTES);
    checkStreams(request);
    const container = this.runningContainer(request.container_id);
    return { url: this.server.urlFor({ kind: 'exec', containerId: container.id, cmd: request.cmd, ...streamsOf(request), ...this.podOf(container.sandboxId) }) };
  }

  prepareAttach(request: cri.AttachRequest): wire.AttachResponse {
    checkStreams(request);
    const container = this.runningContainer(request.container_id);
    if (request.stdin && !container.config.stdin) {
      throw new FailedPreconditionError(`container ${container.id} was not created with stdin open`);
    }
    return { url: this.server.urlFor({ kind: 'attach', containerId: container.id, ...streamsOf(request), tty: container.config.tty, ...this.podOf(container.sandboxId) }) };
  }

  preparePortForward(request: cri.PortForwardRequest): wire.PortForwardResponse {
    checkList('port', request.port, MAX_FORWARDED_PORTS, (port, field) => checkNumber(field, port, 1, 65535));
    const sandbox = this.deps.sandboxes.get(request.pod_sandbox_id);
    if (sandboxStateOf(sandbox) !== 'SANDBOX_READY') throw new FailedPreconditionError(`sandbox ${sandbox.record.id} is not ready`);
    return { url: this.server.urlFor({ kind: 'portforward', sandboxId: sandbox.record.id, ports: request.port, ...this.podOf(sandbox.record.id) }) };
  }

  /** The pod's name and namespace, which every line of the stream's session carries. */
  private podOf(sandboxId: string): PodNames {
    const metadata = this.deps.sandboxes.find(sandboxId)?.record.config.metadata;
    return { podName: metadata?.name ?? '', podNamespace: metadata?.namespace ?? '' };
  }

  private runningContainer(idOrPrefix: string) {
    const container = this.deps.containers.get(idOrPrefix);
    if (criStateOf(container) !== 'CONTAINER_RUNNING') throw new FailedPreconditionError(`container ${container.id} is not running`);
    return container;
  }

  async exec(request: Extract<StreamRequest, { kind: 'exec' }>, session: RemoteCommandSession): Promise<void> {
    // When the client goes away, the process goes too (see ExecStreamOptions.clientGone).
    const exitCode = await this.deps.runtime.execStream(request.containerId, request.cmd, {
      tty: request.tty,
      io: session.io,
      resizes: session.resizes,
      clientGone: session.clientGone,
    });
    await session.finish({ exitCode });
  }

  async attach(request: Extract<StreamRequest, { kind: 'attach' }>, session: RemoteCommandSession): Promise<void> {
    await this.deps.runtime.attach(request.containerId, session.io, session.resizes, session.clientGone);
    await session.finish({ exitCode: 0 });
  }

  dialer(sandboxId: string): Dialer {
    return (port) => {
      const sandbox = this.deps.sandboxes.get(sandboxId);
      return dialInPod(sandbox.record.netnsPath, port);
    };
  }
}

function checkStreams(request: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): void {
  if (!request.stdin && !request.stdout && !request.stderr) {
    throw new InvalidArgumentError('one of stdin, stdout or stderr must be requested');
  }
  if (request.tty && request.stderr) throw new InvalidArgumentError('tty and stderr cannot both be requested');
}

function streamsOf(request: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }) {
  return { stdin: request.stdin, stdout: request.stdout, stderr: request.stderr, tty: request.tty };
}
