import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import transport from 'spdy-transport';

/**
 * The server side of a SPDY/3.1 connection as Kubernetes clients use it (moby/spdystream):
 * streams are opened by the client with plain headers (streamType, port, requestID) instead
 * of an HTTP request, no flow control is done in either direction, and data may only be sent
 * on a stream after it has been replied to.
 *
 * spdy-transport supplies the wire format (frame parsing and building, header compression
 * with the SPDY dictionary); its connection layer expects HTTP requests and windows, so the
 * stream layer here is our own. Frames are built at version 3: 3.1 only adds the
 * connection-level window that spdystream never updates.
 */

const SPDY_VERSION = 3;
const { FLAG_FIN, FLAG_UNIDIRECTIONAL } = transport.protocol.spdy.constants.flags;
/** The framer accounts data against a window; windows are not used here. */
const NO_WINDOW = { send: { update: () => undefined }, recv: { update: () => undefined } };
/** How long a closing connection waits for queued frames to reach the socket. */
const FLUSH_TIMEOUT_MS = 5_000;
const FLUSH_POLL_MS = 5;

interface HeadersFrame {
  type: 'HEADERS';
  id: number;
  fin: boolean;
  writable: boolean;
  headers: Record<string, string>;
}

type Frame =
  | HeadersFrame
  | { type: 'DATA'; id: number; fin: boolean; data: Buffer }
  | { type: 'RST'; id: number }
  | { type: 'PING'; opaque: Buffer; ack: boolean }
  | { type: 'GOAWAY' }
  | { type: string };

/** One stream: a Duplex of its data, with the headers it was opened with. */
export class SpdyStream extends Duplex {
  /** Set once the stream was accepted: by us (server side) or by the peer (client side). */
  replied = false;
  /** Server side: resolves once our SYN_REPLY is queued; data must not overtake it. */
  private replyQueued: Promise<void> = Promise.resolve();

  constructor(
    readonly id: number,
    readonly headers: Record<string, string>,
    private readonly connection: SpdyConnection,
  ) {
    super({ allowHalfOpen: true });
  }

  /** A header value; SPDY lowercases header names. */
  header(name: string): string | undefined {
    return this.headers[name.toLowerCase()];
  }

  /** Accept a peer's stream (SYN_REPLY); required before data can flow back on it. */
  reply(): void {
    if (this.replied) return;
    this.replied = true;
    this.replyQueued = this.connection.sendHeaders((done) => this.connection.framer.responseFrame({ id: this.id, status: 200, headers: {} }, done));
  }

  /** Resolves once the peer accepted a stream we opened. */
  accepted(): Promise<void> {
    return this.replied ? Promise.resolve() : new Promise((resolve) => this.once('accepted', resolve));
  }

  override _read(): void {
    this.connection.resumeInput();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (!this.connection.isServer) {
      this.accepted().then(() => this.connection.framer.dataFrame({ id: this.id, priority: false, fin: false, data: chunk }, () => callback()));
      return;
    }
    this.reply();
    void this.replyQueued.then(() => this.connection.framer.dataFrame({ id: this.id, priority: false, fin: false, data: chunk }, () => callback()));
  }

  /** Our side is done: an empty DATA frame with FIN. */
  override _final(callback: (error?: Error | null) => void): void {
    if (this.connection.isServer) this.reply();
    void this.replyQueued.then(() => this.connection.framer.dataFrame({ id: this.id, priority: false, fin: true, data: Buffer.alloc(0) }, () => callback()));
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.connection.forget(this.id);
    callback(err);
  }
}

export declare interface SpdyConnection {
  on(event: 'stream', listener: (stream: SpdyStream) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
}

export class SpdyConnection extends EventEmitter {
  readonly framer = transport.protocol.spdy.framer.create({ window: NO_WINDOW });
  private readonly parser;
  private readonly streams = new Map<number, SpdyStream>();
  private closed = false;
  /** SYN_STREAM/SYN_REPLY frames still being compressed: not yet in the framer's queue. */
  private headerFramesInFlight = 0;
  /** Streams we open get odd ids as a client (as spdystream does). */
  private nextId = 1;

  constructor(
    private readonly socket: Duplex,
    readonly isServer = true,
  ) {
    super();
    // The parser tells our pings' answers from the peer's pings by id parity, which depends on the side.
    this.parser = transport.protocol.spdy.parser.create({ isServer });
    const compression = transport.protocol.spdy.compressionPool.create().get(SPDY_VERSION);
    for (const part of [this.parser, this.framer]) {
      part.setVersion(SPDY_VERSION);
      part.setCompression(compression);
    }
    // spdystream opens streams with headers only; the stock parser insists on :method/:path.
    Object.assign(this.parser, { onSynHeadFrame: parseSynHeaders });
    this.framer.pipe(socket);
    socket.pipe(this.parser);
    this.parser.on('data', (frame: Frame) => this.onFrame(frame));
    this.parser.on('error', (err: Error) => this.fail(err));
    socket.on('error', (err: Error) => this.fail(err));
    // The parser decompresses header blocks asynchronously, so frames that arrived just before
    // the peer hung up may still be in it: close once it has handed out the last of them.
    socket.on('close', () => this.parser.end());
    this.parser.on('end', () => this.close());
  }

  private onFrame(frame: Frame): void {
    switch (frame.type) {
      case 'HEADERS':
        return this.onHeaders(frame as HeadersFrame);
      case 'DATA': {
        const { id, fin, data } = frame as { id: number; fin: boolean; data: Buffer };
        const stream = this.streams.get(id);
        if (!stream) return;
        // spdystream has no flow control: back-pressure is TCP's, by pausing the socket.
        if (data.length > 0 && !stream.push(data)) this.socket.pause();
        if (fin) stream.push(null);
        return;
      }
      case 'RST':
        this.streams.get((frame as { id: number }).id)?.destroy();
        return;
      case 'PING': {
        const ping = frame as { opaque: Buffer; ack: boolean };
        if (!ping.ack) this.framer.pingFrame({ opaque: ping.opaque, ack: true });
        return;
      }
      case 'GOAWAY':
        this.close();
        return;
      default:
      // SETTINGS, WINDOW_UPDATE, NOOP: nothing to do without flow control.
    }
  }

  /** Open a stream with these headers (client side); data may be written at once. */
  openStream(headers: Record<string, string>): SpdyStream {
    const id = this.nextId;
    this.nextId += 2;
    const stream = new SpdyStream(id, headers, this);
    this.streams.set(id, stream);
    void this.sendHeaders((done) => this.framer.requestFrame({ id, path: '/', method: 'POST', priority: false, fin: false, headers }, done));
    return stream;
  }

  /**
   * Send a headers frame. Its header block is compressed asynchronously, so it reaches the
   * framer's queue later than a DATA frame written after it: the promise says when it did.
   */
  sendHeaders(send: (done: () => void) => void): Promise<void> {
    this.headerFramesInFlight += 1;
    return new Promise((resolve) =>
      send(() => {
        this.headerFramesInFlight -= 1;
        resolve();
      }),
    );
  }

  private onHeaders(frame: HeadersFrame): void {
    const existing = this.streams.get(frame.id);
    if (existing) {
      // The peer's SYN_REPLY to a stream we opened.
      if (!existing.replied) {
        existing.replied = true;
        existing.emit('accepted');
      }
      return;
    }
    const stream = new SpdyStream(frame.id, frame.headers, this);
    this.streams.set(frame.id, stream);
    if (frame.fin) stream.push(null);
    if (!frame.writable) stream.end();
    this.emit('stream', stream);
  }

  resumeInput(): void {
    this.socket.resume();
  }

  forget(id: number): void {
    this.streams.delete(id);
  }

  private fail(err: Error): void {
    if (this.closed) return;
    this.emit('error', err);
    this.close();
  }

  /** Close every stream and the connection (after what was queued has been written). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const stream of this.streams.values()) stream.destroy();
    this.streams.clear();
    this.endSocketWhenFlushed();
    this.emit('close');
  }

  /**
   * The framer hands frames to the socket a tick or more after they are queued, so ending the
   * socket at once would drop the last replies and FINs: a client then waits for a SYN_REPLY
   * that never comes. Wait until the framer is empty (or the peer is gone, or it takes too long).
   */
  private endSocketWhenFlushed(): void {
    const framer = this.framer as unknown as { count: number; readableLength: number };
    const deadline = Date.now() + FLUSH_TIMEOUT_MS;
    const attempt = (): void => {
      const pending = this.headerFramesInFlight > 0 || framer.count > 0 || framer.readableLength > 0;
      if (pending && !this.socket.destroyed && Date.now() < deadline) {
        setTimeout(attempt, FLUSH_POLL_MS);
        return;
      }
      this.framer.unpipe(this.socket);
      this.socket.end();
    };
    setImmediate(attempt);
  }
}

/**
 * SYN_STREAM / SYN_REPLY body: stream id (and for SYN_STREAM the associated id, priority and
 * slot), then the compressed header block. Runs with the parser as `this`.
 */
function parseSynHeaders(
  this: { parseKVs: (b: unknown, cb: (err: Error | null, h: Record<string, string>) => void) => void },
  type: number,
  flags: number,
  body: { has(n: number): boolean; clone(n: number): { readUInt32BE(): number }; skip(n: number): void },
  callback: (err: Error | null, frame?: HeadersFrame) => void,
): void {
  const isSynStream = type === 0x01;
  const fixed = isSynStream ? 10 : 4;
  if (!body.has(fixed)) return callback(new Error('SPDY: SYN frame too short'));
  const head = body.clone(fixed);
  body.skip(fixed);
  this.parseKVs(body, (err, headers) => {
    if (err) return callback(err);
    const id = head.readUInt32BE() & 0x7fffffff;
    if (id === 0) return callback(new Error('SPDY: stream id 0 in a SYN frame'));
    callback(null, {
      type: 'HEADERS',
      id,
      fin: (flags & FLAG_FIN) !== 0,
      writable: (flags & FLAG_UNIDIRECTIONAL) === 0,
      headers,
    });
  });
}
