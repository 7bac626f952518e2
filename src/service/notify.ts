/**
 * The systemd notification protocol (sd_notify): under `Type=notify`, systemd waits for
 * READY=1 on the datagram socket named by NOTIFY_SOCKET before it considers the service
 * started, so units ordered after tscri (the kubelet) start only once the CRI socket serves.
 * Without NOTIFY_SOCKET (a terminal, another supervisor) every call is a no-op.
 */
import { DgramSocket } from 'node-unix-socket';
import type { Logger } from 'pino';

export type ServiceState = 'READY=1' | 'RELOADING=1' | 'STOPPING=1';

export class SystemdNotifier {
  private readonly socketPath: string | undefined;
  private socket: DgramSocket | undefined;

  constructor(
    private readonly log: Logger,
    notifySocket = process.env.NOTIFY_SOCKET,
  ) {
    if (!notifySocket) return;
    // systemd's own socket is a path; an abstract one (@name) is used by some test harnesses
    // and containers, which the datagram binding cannot address.
    if (notifySocket.startsWith('/')) this.socketPath = notifySocket;
    else log.warn({ notifySocket }, 'NOTIFY_SOCKET is not a path; systemd will not be told when tscri is ready');
    // Children (conmon, runc, plugins) must not talk to systemd in tscri's name.
    delete process.env.NOTIFY_SOCKET;
  }

  /** Send a state, with a STATUS line for `systemctl status`; failures are logged, never thrown. */
  notify(state: ServiceState, status?: string): Promise<void> {
    const socketPath = this.socketPath;
    if (!socketPath) return Promise.resolve();
    const message = Buffer.from([state, ...(status ? [`STATUS=${status.replace(/\n/g, ' ')}`] : [])].join('\n'));
    return new Promise((resolve) => {
      try {
        this.socket ??= new DgramSocket();
        this.socket.sendTo(message, 0, message.length, socketPath, (err) => {
          if (err) this.log.warn({ err, socketPath, state }, 'cannot notify systemd');
          resolve();
        });
      } catch (err) {
        this.log.warn({ err, socketPath, state }, 'cannot notify systemd');
        resolve();
      }
    });
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
  }
}
