import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { ImageServiceHandlers } from '../api/generated/runtime/v1/ImageService.js';
import type { RuntimeServiceHandlers } from '../api/generated/runtime/v1/RuntimeService.js';
import { loadCri } from '../api/cri.js';
import { FailedPreconditionError, InternalError, messageOf } from '../errors.js';
import { filteredConnection } from './authority.js';
import { after } from '../util/timer.js';

/** Messages up to 16 MiB: ListContainers/ListPodSandbox replies on a busy node are large. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface ExtraService {
  definition: grpc.ServiceDefinition;
  handlers: grpc.UntypedServiceImplementation;
}

/** The gRPC server on the CRI Unix socket. */
export class CriServer {
  private readonly server = new grpc.Server({
    'grpc.max_receive_message_length': MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': MAX_MESSAGE_BYTES,
  });
  private listener: net.Server | undefined;

  /** `extra`: tscri's own services on the same socket (the image loader). */
  constructor(runtime: RuntimeServiceHandlers, images: ImageServiceHandlers, extra: ExtraService[] = []) {
    const cri = loadCri();
    this.server.addService(cri.RuntimeService.service, runtime);
    this.server.addService(cri.ImageService.service, images);
    for (const service of extra) this.server.addService(service.definition, service.handlers);
  }

  /**
   * Listen on `socketPath` (mode 0660). A socket file left by an earlier daemon is replaced;
   * anything else at that path is refused rather than deleted. Connections are accepted here
   * and handed to grpc-js through an `:authority` filter (see authority.ts).
   */
  async listen(socketPath: string): Promise<void> {
    await fs.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o711 });
    await removeStaleSocket(socketPath);
    const injector = this.server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    const listener = net.createServer((socket) => injector.injectConnection(filteredConnection(socket)));
    await new Promise<void>((resolve, reject) => {
      listener.once('error', (err) => reject(new InternalError(`cannot listen on ${socketPath}: ${err.message}`)));
      listener.listen(socketPath, () => resolve());
    });
    await fs.chmod(socketPath, 0o660);
    this.listener = listener;
  }

  /** Stop accepting calls and let running ones finish for up to `graceMs`. */
  async close(graceMs: number): Promise<void> {
    this.listener?.close();
    await new Promise<void>((resolve) => {
      const timer = after(graceMs, () => {
        this.server.forceShutdown();
        resolve();
      });
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** Whether something accepts connections on the socket (a stale one refuses them). */
function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    const done = (result: boolean): void => {
      socket.destroy();
      resolve(result);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat;
  try {
    stat = await fs.lstat(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new InternalError(`${socketPath} exists and is not a socket; refusing to replace it`);
  // A socket someone still answers on belongs to a running daemon: taking it over would
  // leave that daemon unreachable, and its clients talking to the wrong one.
  if (await answers(socketPath)) {
    throw new FailedPreconditionError(`${socketPath} is served by a running process (another tscri?); stop it or choose another listen address`);
  }
  try {
    await fs.unlink(socketPath);
  } catch (err) {
    throw new InternalError(`cannot remove stale socket ${socketPath}: ${messageOf(err)}`);
  }
}
