import hpack from 'hpack.js';
import { describe, expect, it } from 'vitest';
import { AuthorityFilter, encodeLiterals, isValidAuthority } from '../../src/server/authority.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/** A client's encoder: indexes headers into its dynamic table, like gRPC-Go's does. */
function clientEncoder() {
  const compressor = hpack.compressor.create({ table: { size: 4096 } });
  return (headers: Array<{ name: string; value: string }>): Buffer => {
    compressor.write(headers);
    const chunks: Buffer[] = [];
    for (let c = compressor.read(); c !== null; c = compressor.read()) chunks.push(c);
    return Buffer.concat(chunks);
  };
}

/** Split filter output into frames and decode the header blocks as the server would. */
function serverView(bytes: Buffer): Array<{ type: number; flags: number; headers?: Record<string, string>; payload: Buffer }> {
  const decoder = hpack.decompressor.create({ table: { size: 4096 } });
  const frames = [];
  let offset = PREFACE.length;
  expect(bytes.subarray(0, PREFACE.length)).toEqual(PREFACE);
  while (offset < bytes.length) {
    const length = bytes.readUIntBE(offset, 3);
    const type = bytes[offset + 3]!;
    const flags = bytes[offset + 4]!;
    const payload = bytes.subarray(offset + 9, offset + 9 + length);
    offset += 9 + length;
    if (type === 1) {
      decoder.write(payload);
      decoder.execute();
      const headers: Record<string, string> = {};
      for (let h = decoder.read(); h !== null; h = decoder.read()) headers[h.name] = h.value;
      frames.push({ type, flags, headers, payload });
    } else {
      frames.push({ type, flags, payload });
    }
  }
  return frames;
}

const request = (authority: string) => [
  { name: ':method', value: 'POST' },
  { name: ':scheme', value: 'http' },
  { name: ':path', value: '/runtime.v1.RuntimeService/Version' },
  { name: ':authority', value: authority },
  { name: 'content-type', value: 'application/grpc' },
];

describe('the :authority filter in front of grpc-js', () => {
  it('knows which authorities nghttp2 accepts', () => {
    expect(isValidAuthority('localhost')).toBe(true);
    expect(isValidAuthority('127.0.0.1:5000')).toBe(true);
    expect(isValidAuthority('/run/tscri/tscri.sock')).toBe(false);
  });

  it('replaces a socket-path authority in every request of a connection, dynamic table and all', () => {
    const encode = clientEncoder();
    const settings = frame(4, 0, 0, Buffer.alloc(0));
    const first = frame(1, 0x4, 1, encode(request('/run/tscri/tscri.sock')));
    const data = frame(0, 0x1, 1, Buffer.from('payload'));
    // The second request reuses the client's dynamic table entries (short indexed form).
    const second = frame(1, 0x4 | 0x1, 3, encode(request('/run/tscri/tscri.sock')));
    const input = Buffer.concat([PREFACE, settings, first, data, second]);

    // Feed in awkward pieces to exercise reassembly.
    const filter = new AuthorityFilter();
    const out: Buffer[] = [];
    for (let i = 0; i < input.length; i += 7) out.push(filter.push(input.subarray(i, i + 7)));
    const frames = serverView(Buffer.concat(out));

    expect(frames.map((f) => f.type)).toEqual([4, 1, 0, 1]);
    expect(frames[1]!.headers![':authority']).toBe('localhost');
    expect(frames[1]!.headers![':path']).toBe('/runtime.v1.RuntimeService/Version');
    expect(frames[2]!.payload.toString()).toBe('payload');
    expect(frames[3]!.headers![':authority']).toBe('localhost');
    expect(frames[3]!.headers!['content-type']).toBe('application/grpc');
    expect(frames[3]!.flags & 0x1).toBe(0x1);
  });

  it('reassembles a header block split over CONTINUATION frames', () => {
    const block = clientEncoder()(request('/tmp/a.sock'));
    const input = Buffer.concat([PREFACE, frame(1, 0, 1, block.subarray(0, 5)), frame(9, 0x4, 1, block.subarray(5))]);
    const frames = serverView(new AuthorityFilter().push(input));
    expect(frames).toHaveLength(1);
    expect(frames[0]!.headers![':authority']).toBe('localhost');
  });

  it('passes a connection with a valid authority through byte for byte', () => {
    const encode = clientEncoder();
    const input = Buffer.concat([PREFACE, frame(1, 0x4, 1, encode(request('localhost'))), frame(1, 0x4, 3, encode(request('localhost')))]);
    const filter = new AuthorityFilter();
    const out = Buffer.concat([filter.push(input.subarray(0, 40)), filter.push(input.subarray(40))]);
    expect(out).toEqual(input);
  });

  it('encodes literals that any HPACK decoder reads back', () => {
    const headers = [{ name: 'x-long', value: 'v'.repeat(300) }];
    const decoder = hpack.decompressor.create({ table: { size: 4096 } });
    decoder.write(encodeLiterals(headers));
    decoder.execute();
    expect(decoder.read()).toMatchObject(headers[0]!);
  });
});
