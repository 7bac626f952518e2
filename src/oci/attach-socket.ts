import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { SeqpacketSocket } from 'node-unix-socket';
import { InternalError, messageOf } from '../errors.js';

/** conmon's first byte of each packet names the stream it came from. */
const STREAM_STDOUT = 2;
const STREAM_STDERR = 3;
/**
 * conmon receives stdin with a 32 KiB buffer, and a SEQPACKET receive into a smaller buffer
 * drops the rest of the packet: larger writes must go as several packets.
 */
const MAX_STDIN_PACKET = 32 * 1024;
/** sun_path holds 108 bytes, the terminating NUL included. */
const MAX_SOCKET_PATH = 107;

/** What a streaming client wires to a container's (or exec's) stdio. */
export interface StreamIO {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
}

/**
 * Relay between a client's streams and a conmon attach socket (AF_UNIX SOCK_SEQPACKET:
 * conmon sends `<stream id byte><data>` packets, takes raw stdin bytes, and reads a
 * half-close as "stdin closed"). Node's net module has no SEQPACKET, hence node-unix-socket.
 * Resolves when conmon closes the socket (the process ended) or the client's side is gone.
 */
export function relayAttachSocket(path: string, io: StreamIO, options: { onConnected?: () => void; until?: Promise<void> } = {}): Promise<void> {
  const { onConnected, until } = options;
  return new Promise((resolve, reject) => {
    let address: SocketAddress;
    try {
      address = socketAddress(path);
    } catch (err) {
      reject(new InternalError(`cannot attach to ${path}: ${messageOf(err)}`));
      return;
    }
    const socket = new SeqpacketSocket();
    let settled = false;
    let stopStdin = (): void => undefined;
    const finish = (err?: Error): void => {
      address.release();
      if (settled) return;
      settled = true;
      // The client's stdin may still deliver data or end after conmon closed the socket:
      // nothing of it may reach a destroyed socket (node-unix-socket throws there).
      stopStdin();
      io.stdin?.unpipe();
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    void until?.then(() => finish());
    socket.on('error', (err: Error) => finish(new InternalError(`attach socket ${path}: ${messageOf(err)}`)));
    let connected = false;
    // node-unix-socket closes the socket (and only then throws) when connect() fails at once.
    const closed = (): void => finish(connected ? undefined : new InternalError(`cannot attach to ${path}: nothing accepts connections there`));
    socket.on('end', closed);
    socket.on('close', closed);
    socket.on('data', (packet: Buffer) => {
      if (packet.length < 1) return;
      const target = packet[0] === STREAM_STDERR ? (io.stderr ?? io.stdout) : packet[0] === STREAM_STDOUT ? io.stdout : undefined;
      target?.write(packet.subarray(1));
    });
    try {
      socket.connect(address.path, () => {
        connected = true;
        address.release();
        onConnected?.();
        if (!settled) stopStdin = forwardStdin(socket, io.stdin);
      });
    } catch (err) {
      finish(new InternalError(`cannot attach to ${path}: ${messageOf(err)}`));
    }
  });
}

interface SocketAddress {
  path: string;
  /** Closes what the address needed open; safe to call more than once. */
  release: () => void;
}

/**
 * A path to connect to. One longer than sun_path (a deep state directory and a 64-character
 * container id are enough) is reached through an open descriptor of its directory, as
 * conmon itself binds it.
 */
function socketAddress(path: string): SocketAddress {
  if (Buffer.byteLength(path) <= MAX_SOCKET_PATH) return { path, release: () => undefined };
  let fd: number | undefined = openSync(dirname(path), fsConstants.O_RDONLY | fsConstants.O_DIRECTORY);
  return {
    path: `/proc/self/fd/${fd}/${basename(path)}`,
    release: () => {
      if (fd !== undefined) closeSync(fd);
      fd = undefined;
    },
  };
}

/**
 * Client stdin to the socket in packets conmon reads whole; its end becomes a half-close.
 * Returns what stops it: the listeners go, and a write under way stops at its next packet.
 */
function forwardStdin(socket: SeqpacketSocket, stdin: Readable | undefined): () => void {
  if (!stdin) return () => undefined;
  let open = true;
  const onData = (chunk: Buffer): void => {
    stdin.pause();
    writePackets(socket, chunk, () => open && stdin.resume(), () => open);
  };
  const onEnd = (): void => {
    if (open) socket.end();
  };
  stdin.on('data', onData);
  stdin.on('end', onEnd);
  return () => {
    open = false;
    stdin.off('data', onData);
    stdin.off('end', onEnd);
  };
}

function writePackets(socket: SeqpacketSocket, data: Buffer, done: () => void, isOpen: () => boolean, offset = 0): void {
  if (!isOpen()) return;
  if (offset >= data.length) return done();
  const length = Math.min(MAX_STDIN_PACKET, data.length - offset);
  socket.write(data, offset, length, () => writePackets(socket, data, done, isOpen, offset + length));
}
