import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pack } from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { TarTail } from '../../src/image/store/tar-tail.js';
import { unpackLayer } from '../../src/image/store/unpack.js';

async function tarWith(files: Record<string, string>): Promise<Buffer> {
  const archive = pack();
  for (const [name, content] of Object.entries(files)) archive.entry({ name, mode: 0o644 }, content);
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await fs.rm(dir, { recursive: true, force: true });
});

async function unpackThroughTail(bytes: Buffer): Promise<string> {
  const target = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-tail-'));
  dirs.push(target);
  await unpackLayer(Readable.from([bytes]).pipe(new TarTail()), { target });
  return target;
}

describe('completing a tar that stops after its last file', () => {
  it('unpacks an archive cut right after the last file’s data, as umoci writes them', async () => {
    const full = await tarWith({ a: 'first', b: 'x'.repeat(35) });
    // Header of b at 1024, its 35 bytes of data at 1536: cut there, dropping padding and trailer.
    const cut = full.subarray(0, 1536 + 35);
    const target = await unpackThroughTail(cut);
    expect(await fs.readFile(path.join(target, 'b'), 'utf8')).toBe('x'.repeat(35));
  });

  it('leaves a complete archive as it is', async () => {
    const target = await unpackThroughTail(await tarWith({ a: 'first' }));
    expect(await fs.readFile(path.join(target, 'a'), 'utf8')).toBe('first');
  });

  it('pads to a whole block and adds the end marker', async () => {
    const out: Buffer[] = [];
    const tail = new TarTail();
    tail.on('data', (c: Buffer) => out.push(c));
    const done = new Promise((resolve) => tail.on('end', resolve));
    tail.end(Buffer.alloc(700, 1));
    await done;
    const bytes = Buffer.concat(out);
    expect(bytes.length).toBe(1024 + 1024);
    expect(bytes.subarray(700).every((b) => b === 0)).toBe(true);
  });
});
