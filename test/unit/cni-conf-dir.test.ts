import { describe, it, expect, afterEach, vi } from 'vitest';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfDirWatcher, type ConfDirOptions } from '../../src/network/cni/conf-dir.js';
import { DEFAULT_NETWORK_FILE } from '../../src/network/cni/config.js';
import { createLogger } from '../../src/log.js';

const roots: string[] = [];
const watchers: ConfDirWatcher[] = [];

afterEach(async () => {
  for (const w of watchers.splice(0)) w.close();
  for (const root of roots.splice(0)) await fs.rm(root, { recursive: true, force: true });
});

function conflist(name: string): string {
  return JSON.stringify({ cniVersion: '1.0.0', name, plugins: [{ type: 'bridge' }] });
}

/** A watcher on a fresh conf dir holding `files`, its log lines parsed. */
async function watcher(files: Record<string, string>, options: Partial<ConfDirOptions> = {}) {
  const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-cni-confdir-'));
  roots.push(root);
  const confDir = path.join(root, 'net.d');
  await fs.mkdir(confDir);
  for (const [name, content] of Object.entries(files)) await fs.writeFile(path.join(confDir, name), content);
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('debug', 'json', {
    write: (line: string) => void lines.push(...line.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)),
  });
  const w = new ConfDirWatcher({ confDir, logger, reloadDebounceMs: 20, ...options });
  watchers.push(w);
  await w.start();
  return { confDir, w, lines };
}

describe('ConfDirWatcher', () => {
  it('selects the first valid file in byte order and says why the ones before it were skipped', async () => {
    const { confDir, w, lines } = await watcher({ '10-bad.conflist': '{', '20-b.conflist': conflist('b'), '30-a.conflist': conflist('a') });
    expect(w.current()).toMatchObject({ config: { name: 'b' }, source: path.join(confDir, '20-b.conflist') });
    expect(lines.map((l) => l['msg'])).toEqual(['skipping invalid CNI config files', 'CNI network selected']);
  });

  it('explains an empty or wholly invalid conf dir', async () => {
    const empty = await watcher({});
    expect(empty.w.current()).toBeUndefined();
    expect(empty.w.whyNone()).toBe(`no CNI network config in ${empty.confDir} (no *.conflist, *.conf or *.json file)`);
    const invalid = await watcher({ '10-x.conf': '{ nope' });
    expect(invalid.w.whyNone()).toMatch(/^no valid CNI network config in .* \(10-x\.conf: invalid JSON.*\)$/);
  });

  it('writes the default network only when there is no valid one and it is configured', async () => {
    const defaultNetwork = { name: 'dflt', bridge: 'dflt0', subnet: '10.99.0.0/16' };
    const written = await watcher({}, { defaultNetwork });
    expect(written.w.current()).toMatchObject({ config: { name: 'dflt' }, source: path.join(written.confDir, DEFAULT_NETWORK_FILE) });
    const kept = await watcher({ '10-a.conflist': conflist('a') }, { defaultNetwork });
    expect(await fs.readdir(kept.confDir)).toEqual(['10-a.conflist']);
    const off = await watcher({}, { defaultNetwork: false });
    expect(await fs.readdir(off.confDir)).toEqual([]);
    expect(off.w.current()).toBeUndefined();
  });

  it('reloads after a change, and selects again when the selected file goes', async () => {
    const { confDir, w } = await watcher({ '20-b.conflist': conflist('b') });
    await fs.writeFile(path.join(confDir, '10-a.conflist'), conflist('a'));
    await vi.waitFor(() => expect(w.current()?.config.name).toBe('a'));
    await fs.rm(path.join(confDir, '10-a.conflist'));
    await vi.waitFor(() => expect(w.current()?.config.name).toBe('b'));
    await fs.rm(path.join(confDir, '20-b.conflist'));
    await vi.waitFor(() => expect(w.current()).toBeUndefined());
  });

  it('watches a conf dir removed and made again, and says so once', async () => {
    const { confDir, w, lines } = await watcher({ '20-b.conflist': conflist('b') });
    await fs.rm(confDir, { recursive: true });
    await vi.waitFor(() => expect(w.current()).toBeUndefined());
    await fs.mkdir(confDir);
    await fs.writeFile(path.join(confDir, '10-a.conflist'), conflist('a'));
    await vi.waitFor(() => expect(w.current()?.config.name).toBe('a'), { timeout: 5000 });
    await fs.writeFile(path.join(confDir, '05-c.conflist'), conflist('c'));
    await vi.waitFor(() => expect(w.current()?.config.name).toBe('c'), { timeout: 5000 });
    expect(lines.filter((line) => line.msg === 'watching the CNI conf dir failed; retrying')).toHaveLength(1);
  });

  it('reloads nothing once closed', async () => {
    const { confDir, w } = await watcher({ '20-b.conflist': conflist('b') });
    w.close();
    await fs.writeFile(path.join(confDir, '10-a.conflist'), conflist('a'));
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(w.current()?.config.name).toBe('b');
  });
});
