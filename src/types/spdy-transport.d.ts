/** The part of spdy-transport (no bundled types) tscri uses: SPDY/3 framing and header compression. */
declare module 'spdy-transport' {
  import type { Duplex, Readable, Transform } from 'node:stream';

  interface CompressionPair {
    version: number;
    compress: Transform;
    decompress: Transform;
  }

  interface OffsetBuffer {
    has(n: number): boolean;
    clone(n: number): OffsetBuffer;
    skip(n: number): void;
    readUInt32BE(): number;
    readUInt8(): number;
  }

  type FrameCallback = (err: Error | null, frame?: unknown) => void;

  interface SpdyParser extends Duplex {
    setVersion(version: number): void;
    setCompression(pair: CompressionPair): void;
    parseKVs(buffer: OffsetBuffer, callback: (err: Error | null, headers: Record<string, string>) => void): void;
  }

  interface SpdyParserConstructor {
    new (options: { isServer: boolean; window?: unknown }): SpdyParser;
    prototype: SpdyParser & {
      onSynHeadFrame(type: number, flags: number, body: OffsetBuffer, callback: FrameCallback): void;
    };
  }

  interface SpdyFramer extends Readable {
    setVersion(version: number): void;
    setCompression(pair: CompressionPair): void;
    requestFrame(frame: { id: number; path: string; method: string; priority: false; fin: boolean; headers: Record<string, string> }, callback?: (err?: Error) => void): void;
    responseFrame(frame: { id: number; status: number; headers: Record<string, string> }, callback?: (err?: Error) => void): void;
    dataFrame(frame: { id: number; priority: false; fin: boolean; data: Buffer }, callback?: (err?: Error) => void): void;
    rstFrame(frame: { id: number; code: string }, callback?: (err?: Error) => void): void;
    pingFrame(frame: { opaque: Buffer; ack: boolean }, callback?: (err?: Error) => void): void;
    goawayFrame(frame: { lastId: number; code: string }, callback?: (err?: Error) => void): void;
  }

  const transport: {
    protocol: {
      spdy: {
        parser: { create(options: { isServer: boolean; window?: unknown }): SpdyParser } & Record<string, unknown>;
        framer: { create(options: { window: unknown; timeout?: unknown }): SpdyFramer };
        compressionPool: { create(compression?: boolean): { get(version: number): CompressionPair } };
        constants: { flags: { FLAG_FIN: number; FLAG_UNIDIRECTIONAL: number } };
      };
    };
  };
  export default transport;
}
