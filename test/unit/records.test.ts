import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { containerRecordSchema } from '../../src/container/record-schema.js';
import { imageRecordSchema } from '../../src/image/store/record-schema.js';
import { sandboxRecordSchema } from '../../src/sandbox/record-schema.js';
import type { SandboxRecord } from '../../src/sandbox/sandbox.js';
import { RecordStore } from '../../src/persistence/records.js';

const ID = 'a'.repeat(64);
const OTHER = 'b'.repeat(64);
const DIGEST = `sha256:${'c'.repeat(64)}`;

function sandbox(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    id: ID,
    name: 'web_default_u_0',
    config: { metadata: { name: 'web', namespace: 'default', uid: 'u', attempt: 0 }, hostname: 'web', log_directory: '', labels: {}, annotations: {}, port_mappings: [], dns_config: null, linux: null },
    runtimeHandler: '',
    createdAt: '1700000000000000000',
    phase: 'ready',
    namespaces: { network: 'POD', pid: 'POD', ipc: 'POD', target_id: '' },
    netnsPath: '/run/netns/cni-0a1b2c3d-0000-4000-8000-00000000abcd',
    shmPath: `/run/tscri/sandboxes/${ID}/shm`,
    hostname: 'web',
    cgroupParent: '/tscri',
    cgroupsPath: `/tscri/${ID}`,
    sandboxImage: 'builtin',
    pausePid: 1234,
    timings: { cni: 20.5 },
    ...overrides,
  };
}

function container(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    id: OTHER,
    sandboxId: ID,
    name: 'c_web_default_u_0',
    config: { metadata: { name: 'c', attempt: 0 }, labels: {}, annotations: {}, tty: false, stdin: false, stdin_once: false },
    image: { requested: 'busybox', id: DIGEST, name: 'busybox', layers: [DIGEST] },
    phase: 'created',
    createdAt: '1',
    startedAt: '2',
    logPath: '/var/log/pods/x/c.log',
    pid: 99,
    resources: null,
    stopSignal: 'SIGTERM',
    ownPidNamespace: false,
    ...overrides,
  };
}

describe('record schemas', () => {
  it('accept what the daemon writes', () => {
    expect(sandboxRecordSchema(sandbox(), '').netnsPath).toMatch(/^\/run\/netns\/cni-/);
    expect(containerRecordSchema(container(), '').pid).toBe(99);
    const image = { version: 1, id: DIGEST, repoTags: ['a:b'], repoDigests: [], size: 1, manifestDigests: [DIGEST], config: { rootfs: { diff_ids: [DIGEST] } }, layers: [{ diffId: DIGEST, digest: DIGEST, size: 1, mediaType: 'x', bytes: 1, inodes: 1 }], pinned: false, pulledAt: 1 };
    expect(imageRecordSchema(image, '').id).toBe(DIGEST);
    expect(() => imageRecordSchema({ ...image, layers: [{ ...image.layers[0], diffId: '../../etc' }] }, '')).toThrow(/layers\[0\]\.diffId: is not a sha256 digest/);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a netns path tscri did not make', { netnsPath: '/etc' }, /netnsPath: is not a netns tscri made/],
    ['a netns path climbing out', { netnsPath: '/run/netns/../../etc/cni-0a1b2c3d-0000-4000-8000-00000000abcd' }, /netnsPath/],
    ["another sandbox's shm", { shmPath: `/run/tscri/sandboxes/${OTHER}/shm` }, /shmPath: belongs to another sandbox/],
    ['an unknown phase', { phase: 'dancing' }, /phase: expected one of creating, ready, stopped/],
    ['a pid that is not a number', { pausePid: '1234' }, /pausePid: expected an integer, found string/],
    ['a truncated config', { config: { hostname: 'x' } }, /config\.metadata: expected an object, found undefined/],
    ['an id that is a path', { id: '../x' }, /^id: is not a sandbox id/],
  ])('refuse a sandbox record with %s', (_what, overrides, message) => {
    expect(() => sandboxRecordSchema(sandbox(overrides), '')).toThrow(message);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ['a log path with ".."', { logPath: '/var/log/../../etc/shadow' }, /logPath/],
    ['a layer that is not a digest', { image: { requested: 'b', id: DIGEST, name: 'b', layers: ['/'] } }, /image\.layers\[0\]: is not a layer diff_id/],
    ['a made-up exit reason', { exit: { exitCode: 0, finishedAt: '1', reason: 'Bored', message: '' } }, /exit\.reason/],
  ])('refuse a container record with %s', (_what, overrides, message) => {
    expect(() => containerRecordSchema(container(overrides), '')).toThrow(message);
  });
});

describe('loading records', () => {
  let root = '';
  const log = pino({ level: 'silent' });

  beforeEach(async () => {
    root = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-records-'));
  });
  afterEach(async () => {
    await fs.rm(root, { recursive: true, force: true });
  });

  async function write(id: string, value: unknown): Promise<void> {
    await fs.mkdir(path.join(root, 'sandboxes', id), { recursive: true });
    await fs.writeFile(path.join(root, 'sandboxes', id, 'sandbox.json'), typeof value === 'string' ? value : JSON.stringify(value));
  }

  it('loads the good, sets the bad aside in quarantine, and never throws', async () => {
    await write(ID, sandbox());
    await write(OTHER, sandbox({ id: OTHER, shmPath: undefined, netnsPath: '/' }));
    await write('c'.repeat(64), '{"version": 1, "id": "trunc');
    await write('d'.repeat(64), sandbox({ id: 'd'.repeat(64), version: 7 }));
    const store = new RecordStore<SandboxRecord>(path.join(root, 'sandboxes'), 'sandbox.json', 1, sandboxRecordSchema, 'sandbox');
    const loaded = await store.loadAll(log);
    expect(loaded.map((r) => r.id)).toEqual([ID]);
    expect(store.setAside.map((s) => s.id).sort()).toEqual([OTHER, 'c'.repeat(64), 'd'.repeat(64)].sort());
    expect(store.setAside.find((s) => s.id === OTHER)!.problem).toMatch(/netnsPath/);
    expect(await fs.readdir(path.join(root, 'sandboxes'))).toEqual([ID]);
    expect((await fs.readdir(path.join(root, 'quarantine'))).length).toBe(3);
  });

  it('retires a record in one rename, and a later load finishes the removal through its hook', async () => {
    await write(ID, sandbox());
    await write(OTHER, sandbox({ id: OTHER, shmPath: `/run/tscri/sandboxes/${OTHER}/shm`, cgroupsPath: `/tscri/${OTHER}` }));
    const finished: Array<[string, string]> = [];
    const open = () =>
      new RecordStore<SandboxRecord>(path.join(root, 'sandboxes'), 'sandbox.json', 1, sandboxRecordSchema, 'sandbox', async (id, dir) => {
        finished.push([id, path.basename(dir)]);
        await fs.rm(dir, { recursive: true });
      });
    const store = open();
    const retired = (await store.retire(ID))!;
    expect(path.basename(retired)).toMatch(new RegExp(`^${ID}\\.removing-[0-9a-f]{8}$`));
    expect(await fs.readFile(path.join(retired, 'sandbox.json'), 'utf8')).toContain(ID);
    expect(await store.retire(ID)).toBeUndefined();
    // A crash now: the next daemon loads the other record only, and finishes this removal.
    const records = await open().loadAll(log);
    expect(records.map((r) => r.id)).toEqual([OTHER]);
    expect(finished).toEqual([[ID, path.basename(retired)]]);
    expect(await fs.readdir(path.join(root, 'sandboxes'))).toEqual([OTHER]);
  });
});
