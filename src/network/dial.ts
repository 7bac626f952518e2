import { spawn } from 'node:child_process';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { FailedPreconditionError } from '../errors.js';

/** How long a dial may take before it is abandoned. */
const DIAL_TIMEOUT_MS = 10_000;

/**
 * A TCP connection to `port` on the pod's loopback. Host-network pods are dialed directly;
 * otherwise socat connects from inside the pod's network namespace and its stdio becomes
 * the connection (Node cannot enter a namespace itself: setns is per thread, and libuv runs
 * several). socat reports "starting data transfer loop" once connected, which is when this
 * resolves, so a closed port is a clean rejection rather than an empty stream.
 */
export function dialInPod(netnsPath: string | undefined, port: number): Promise<Duplex> {
  return netnsPath ? dialThroughSocat(netnsPath, port) : dialLocal(port);
}

function dialLocal(port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port, timeout: DIAL_TIMEOUT_MS });
    socket.once('connect', () => {
      socket.setTimeout(0);
      resolve(socket);
    });
    socket.once('timeout', () => socket.destroy(new FailedPreconditionError(`no answer from port ${port}`)));
    socket.once('error', (err) => reject(new FailedPreconditionError(`cannot connect to port ${port}: ${err.message}`)));
  });
}

function dialThroughSocat(netnsPath: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    // shut-close: when the pod side closes, socat closes its stdout at once (an ordered EOF),
    // while -t still lets the other direction finish for up to a minute.
    const child = spawn('nsenter', [`--net=${netnsPath}`, 'socat', '-d', '-d', '-t', '60', 'STDIO,shut-close', `TCP4:127.0.0.1:${port}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let log = '';
    let connected = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), DIAL_TIMEOUT_MS);
    child.stderr.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (!connected && log.includes('starting data transfer loop')) {
        connected = true;
        clearTimeout(timer);
        const connection = Duplex.from({ readable: child.stdout, writable: child.stdin });
        connection.once('close', () => child.kill());
        resolve(connection);
      }
    });
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => reject(new FailedPreconditionError(`cannot start socat: ${err.message}`)));
    child.on('exit', () => {
      clearTimeout(timer);
      if (connected) return;
      const reason = /E (.*)$/m.exec(log)?.[1] ?? log.trim().split('\n').pop() ?? 'socat exited';
      reject(new FailedPreconditionError(`cannot connect to port ${port} in the pod: ${reason}`));
    });
  });
}
