import { PassThrough, Writable, type Readable } from 'node:stream';
import type { RawData, WebSocket } from 'ws';

/** v5 of the channel protocol: a message [255, n] says the sender closed channel n. */
const CLOSE_SIGNAL = 255;

/**
 * Channels multiplexed over one WebSocket as Kubernetes does it: each message starts with its
 * channel number, as a byte, or with the base64 subprotocols as an ASCII digit followed by
 * the base64 of the data. Channels are exposed as streams; a full reader pauses the socket.
 */
export class ChannelSocket {
  readonly closed: Promise<void>;
  private readonly readers = new Map<number, PassThrough>();

  /**
   * May be made before the connection is open (a client must listen before the server's first
   * messages arrive, which can come with the handshake itself).
   */
  constructor(private readonly ws: WebSocket) {
    this.closed = new Promise((resolve) => ws.once('close', () => resolve()));
    ws.on('message', (data: RawData, isBinary: boolean) => this.onMessage(toBuffer(data), isBinary));
    ws.on('close', () => {
      for (const reader of this.readers.values()) reader.end();
    });
    ws.on('error', () => undefined);
  }

  /** The base64 subprotocols, known once the handshake chose one. */
  private get base64(): boolean {
    return this.ws.protocol.includes('base64');
  }

  private onMessage(message: Buffer, isBinary: boolean): void {
    if (message.length === 0) return;
    const text = this.base64 && !isBinary;
    const channel = text ? message[0]! - 0x30 : message[0]!;
    if (channel === CLOSE_SIGNAL && message.length >= 2) {
      this.readers.get(message[1]!)?.end();
      return;
    }
    const reader = this.readers.get(channel);
    if (!reader || reader.writableEnded) return;
    const payload = text ? Buffer.from(message.subarray(1).toString(), 'base64') : message.subarray(1);
    if (!reader.write(payload)) {
      this.ws.pause();
      reader.once('drain', () => this.ws.resume());
    }
  }

  /** What the client sends on `channel`. */
  readable(channel: number): Readable {
    const reader = new PassThrough();
    this.readers.set(channel, reader);
    return reader;
  }

  /**
   * A stream whose writes go out on `channel`, each acknowledged before the next. Once the
   * connection is closed, what is written is dropped, as `send` drops it: the peer is gone,
   * and a write error would be an 'error' event on a stream the writer (a pipe from a
   * process's output) does not listen on, which ends the daemon.
   */
  writable(channel: number): Writable {
    return new Writable({
      write: (chunk: Buffer, _encoding, callback) => {
        if (this.ws.readyState !== this.ws.OPEN) return callback();
        this.ws.send(this.frame(channel, chunk), () => callback());
      },
    });
  }

  send(channel: number, data: Buffer): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(this.frame(channel, data));
  }

  sendAsync(channel: number, data: Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.ws.readyState !== this.ws.OPEN) return resolve();
      this.ws.send(this.frame(channel, data), () => resolve());
    });
  }

  private frame(channel: number, data: Buffer): Buffer | string {
    if (this.base64) return `${String.fromCharCode(0x30 + channel)}${data.toString('base64')}`;
    return Buffer.concat([Buffer.from([channel]), data]);
  }

  close(): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.close(1000);
  }
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
