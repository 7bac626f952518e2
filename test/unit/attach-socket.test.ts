import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { SeqpacketServer, type SeqpacketSocket } from 'node-unix-socket';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { relayAttachSocket } from '../../src/oci/attach-socket.js';

/** A stand-in for conmon's attach socket: sends stdout and stderr packets, echoes stdin back on stdout. */
function fakeConmon(socketPath: string): SeqpacketServer {
  const server = new SeqpacketServer();
  server.on('connection', (socket: SeqpacketSocket) => {
    socket.write(Buffer.from('\x02out\n'));
    socket.write(Buffer.from('\x03err\n'));
    socket.on('data', (data: Buffer) => socket.write(Buffer.concat([Buffer.from([2]), data])));
    socket.on('end', () => socket.destroy());
  });
  server.listen(socketPath);
  return server;
}

function collect(stream: PassThrough): () => string {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  return () => Buffer.concat(chunks).toString();
}

describe('relayAttachSocket', () => {
  let dir: string;
  let server: SeqpacketServer | undefined;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tscri-attach-'));
  });
  afterEach(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function relay(socketPath: string): Promise<{ stdout: string; stderr: string }> {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const out = collect(stdout);
    const err = collect(stderr);
    const done = relayAttachSocket(socketPath, { stdin, stdout, stderr }, { onConnected: () => stdin.end('typed\n') });
    await done;
    return { stdout: out(), stderr: err() };
  }

  it('splits packets into stdout and stderr and passes stdin through, closing it on end', async () => {
    server = fakeConmon(path.join(dir, 'attach'));
    const { stdout, stderr } = await relay(path.join(dir, 'attach'));
    expect(stdout).toBe('out\ntyped\n');
    expect(stderr).toBe('err\n');
  });

  it('reaches a socket whose path is longer than sun_path holds', async () => {
    const bundle = path.join(dir, 'b');
    mkdirSync(bundle);
    server = fakeConmon(path.join(bundle, 'attach'));
    // A deep state directory plus a 64-character container id, as a real bundle path can be.
    const deep = path.join(dir, 'state'.repeat(8), 'bundles');
    mkdirSync(deep, { recursive: true });
    const longBundle = path.join(deep, 'f'.repeat(64));
    symlinkSync(bundle, longBundle);
    const longPath = path.join(longBundle, 'attach');
    expect(Buffer.byteLength(longPath)).toBeGreaterThan(107);

    const { stdout } = await relay(longPath);
    expect(stdout).toBe('out\ntyped\n');
  });

  it('fails with the path when nothing listens', async () => {
    await expect(relay(path.join(dir, 'absent'))).rejects.toThrow(/absent/);
  });
});
