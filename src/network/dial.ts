import { spawn } from 'node:child_process';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { FailedPreconditionError } from '../errors.js';
import { CappedOutput, killProcessGroup, outputExcerpt } from '../util/run.js';
import { after } from '../util/timer.js';

/** How long a dial may take before it is abandoned. */
const DIAL_TIMEOUT_MS = 10_000;

/** socat's `-d -d` log before and after connecting is a few lines; more is dropped. */
const MAX_SOCAT_LOG_BYTES = 64 * 1024;

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

/**
 * socat runs in a process group of its own (nsenter execs it, so the group is that one
 * process and whatever it might start), killed whole when the dial times out, fails, or the
 * connection closes: a forwarded connection leaves nothing running behind it.
 */
function dialThroughSocat(netnsPath: string, port: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    // shut-close: when the pod side closes, socat closes its stdout at once (an ordered EOF),
    // while -t still lets the other direction finish for up to a minute.
    const child = spawn('nsenter', [`--net=${netnsPath}`, 'socat', '-d', '-d', '-t', '60', 'STDIO,shut-close', `TCP4:127.0.0.1:${port}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    const log = new CappedOutput(child.stderr, MAX_SOCAT_LOG_BYTES);
    const logText = (): string => log.bytes().toString();
    // Only while socat runs: once it has exited and been reaped, its pid may name another group.
    const killSocat = (): void => {
      if (child.exitCode === null && child.signalCode === null) killProcessGroup(child.pid);
    };
    let connected = false;
    const timer = after(DIAL_TIMEOUT_MS, killSocat);
    child.stderr.on('data', () => {
      if (connected || !logText().includes('starting data transfer loop')) return;
      connected = true;
      clearTimeout(timer);
      const connection = Duplex.from({ readable: child.stdout, writable: child.stdin });
      connection.once('close', killSocat);
      resolve(connection);
    });
    child.stdin.on('error', () => undefined);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new FailedPreconditionError(`cannot start socat: ${err.message}`));
    });
    child.on('exit', () => {
      clearTimeout(timer);
      // Nothing socat started may outlive it, connected or not.
      killProcessGroup(child.pid);
      if (connected) return;
      const text = logText();
      const reason = /E (.*)$/m.exec(text)?.[1] ?? text.trim().split('\n').pop() ?? 'socat exited';
      reject(new FailedPreconditionError(`cannot connect to port ${port} in the pod: ${outputExcerpt(reason)}`));
    });
  });
}
