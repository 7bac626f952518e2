import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SpdyConnection, type SpdyStream } from '../../src/streaming/spdy.js';

function readAll(stream: SpdyStream): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => resolve(Buffer.concat(chunks).toString()));
    stream.on('error', reject);
  });
}

describe('SpdyConnection', () => {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const cleanup of cleanups.splice(0)) cleanup();
  });

  /** A server that answers each stream with `reply`, then closes the connection at once. */
  async function serverReplyingThenClosing(reply: (stream: SpdyStream) => string): Promise<string> {
    const dir = mkdtempSync(path.join(tmpdir(), 'tscri-spdy-'));
    const socketPath = path.join(dir, 's');
    const server = net.createServer((socket) => {
      const connection = new SpdyConnection(socket, true);
      connection.on('stream', (stream) => {
        stream.reply();
        stream.end(reply(stream), () => connection.close());
      });
    });
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    cleanups.push(() => {
      server.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return socketPath;
  }

  it('delivers the last reply and data before a closing side ends the socket', async () => {
    const socketPath = await serverReplyingThenClosing((stream) => `status for ${stream.header('streamType')}`);
    const socket = net.connect(socketPath)
    const client = new SpdyConnection(socket, false);
    cleanups.push(() => socket.destroy());

    const stream = client.openStream({ streamType: 'error' });
    const body = readAll(stream);
    await stream.accepted();
    expect(await body).toBe('status for error');
  });
});
