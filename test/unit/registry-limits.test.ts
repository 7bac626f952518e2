/**
 * A registry's bodies are read with a cap and an idle timeout, and a pull without progress is
 * given up: the body reader, the registry session and the pull watchdog against a local HTTP
 * server on 127.0.0.1 that announces too much, never stops, or stalls.
 */
import { promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig, defaultConfig } from '../../src/config/config.js';
import { TscriError } from '../../src/errors.js';
import { IdleTimer } from '../../src/image/idle-timer.js';
import { PullWatchdog } from '../../src/image/pull-watchdog.js';
import { parseReference } from '../../src/image/reference.js';
import { BODY_LIMITS, BodyTooLargeError, bodyStream, excerpt, readBody, type BodyOptions } from '../../src/image/registry/body.js';
import { RegistrySession, type SessionOptions } from '../../src/image/registry/client.js';
import { MediaType, parseManifest } from '../../src/image/registry/manifest.js';
import { sha256Digest } from '../../src/image/registry/verify.js';
import { StoreLayout } from '../../src/image/store/layout.js';
import { LayerStore } from '../../src/image/store/layers.js';
import { silentLogger } from '../../src/log.js';
import { pourEndlessly } from '../e2e/fake-registry.js';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

/** An HTTP server on 127.0.0.1 with a handler per path; unknown paths are 404. */
class LocalServer {
  readonly requests: string[] = [];
  readonly routes = new Map<string, Handler>();
  private readonly server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://local').pathname;
    this.requests.push(pathname);
    const handler = this.routes.get(pathname);
    if (handler) handler(req, res);
    else res.writeHead(404).end();
  });

  static async start(): Promise<LocalServer> {
    const local = new LocalServer();
    await new Promise<void>((resolve) => local.server.listen(0, '127.0.0.1', resolve));
    return local;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  on(pathname: string, handler: Handler): this {
    this.routes.set(pathname, handler);
    return this;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

let server: LocalServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function startServer(): Promise<LocalServer> {
  server = await LocalServer.start();
  return server;
}

/** How long `promise` takes to reject, and with what. */
async function rejection(promise: Promise<unknown>): Promise<{ error: TscriError; ms: number }> {
  const started = performance.now();
  try {
    await promise;
  } catch (error) {
    return { error: error as TscriError, ms: performance.now() - started };
  }
  throw new Error('expected a rejection');
}

describe('reading a body with a cap', () => {
  const LIMIT = { bytes: 256 * 1024, of: 'test bodies' };
  const options = (url: string, extra: Partial<BodyOptions> = {}): BodyOptions => ({ what: 'test body', url, idleMs: 2000, ...extra });

  it('refuses a Content-Length above the cap before reading any of it', async () => {
    const local = (await startServer()).on('/huge', (_req, res) => {
      res.writeHead(200, { 'content-length': 10 * 1024 ** 3 });
      void pourEndlessly(res);
    });
    let read = 0;
    const response = await fetch(`${local.url}/huge`);
    const { error, ms } = await rejection(readBody(response, LIMIT, options(`${local.url}/huge`, { onData: (n) => (read += n) })));
    expect(error).toBeInstanceOf(BodyTooLargeError);
    expect(error.code).toBe('ResourceExhausted');
    expect(error.message).toBe(`test body from ${local.url}/huge announces 10737418240 bytes (Content-Length), above the 256 KiB limit for test bodies`);
    expect(read).toBe(0);
    expect(ms).toBeLessThan(1000);
  });

  it('cuts a chunked body off as soon as it passes the cap', async () => {
    const local = (await startServer()).on('/endless', (_req, res) => {
      res.writeHead(200);
      void pourEndlessly(res);
    });
    let read = 0;
    const response = await fetch(`${local.url}/endless`);
    const { error } = await rejection(readBody(response, LIMIT, options(`${local.url}/endless`, { onData: (n) => (read += n) })));
    expect(error).toBeInstanceOf(BodyTooLargeError);
    expect(error.message).toBe(`test body from ${local.url}/endless passed the 256 KiB limit for test bodies; cut off`);
    expect(read).toBeLessThanOrEqual(LIMIT.bytes);
  });

  it('reads a body up to the cap whole, and calls onEnd once', async () => {
    const body = Buffer.alloc(LIMIT.bytes, 'a');
    const local = (await startServer()).on('/exact', (_req, res) => res.end(body));
    let ends = 0;
    const response = await fetch(`${local.url}/exact`);
    expect((await readBody(response, LIMIT, options(`${local.url}/exact`, { onEnd: () => (ends += 1) }))).equals(body)).toBe(true);
    expect(ends).toBe(1);
  });

  it('abandons a body that stalls, but not one that trickles', async () => {
    const local = (await startServer())
      .on('/stall', (_req, res) => {
        res.writeHead(200, { 'content-length': 100 });
        res.write('half');
      })
      .on('/trickle', (_req, res) => {
        let sent = 0;
        const timer = setInterval(() => {
          res.write('.');
          if (++sent === 6) {
            clearInterval(timer);
            res.end();
          }
        }, 100);
      });
    const stalled = await rejection(readBody(await fetch(`${local.url}/stall`), LIMIT, options(`${local.url}/stall`, { idleMs: 300, idleSetting: 'test.timeout' })));
    expect(stalled.error.code).toBe('Unavailable');
    expect(stalled.error.message).toBe(`no data for 0.3 s (test.timeout) reading test body from ${local.url}/stall`);
    expect(stalled.ms).toBeLessThan(2000);
    // Six bytes 100 ms apart: 600 ms in all, never 300 ms without data.
    const trickled = await readBody(await fetch(`${local.url}/trickle`), LIMIT, options(`${local.url}/trickle`, { idleMs: 300 }));
    expect(trickled.toString()).toBe('......');
  });

  it('stops at once when its signal aborts, with the abort’s reason', async () => {
    const local = (await startServer()).on('/stall', (_req, res) => {
      res.writeHead(200);
      res.write('some');
    });
    const controller = new AbortController();
    const response = await fetch(`${local.url}/stall`);
    setTimeout(() => controller.abort(new TscriError('Canceled', 'given up')), 100);
    const { error, ms } = await rejection(readBody(response, LIMIT, options(`${local.url}/stall`, { signal: controller.signal })));
    expect(error.message).toBe('given up');
    expect(ms).toBeLessThan(1000);
  });

  it('streams a body that fails once it stalls', async () => {
    const local = (await startServer()).on('/layer', (_req, res) => {
      res.writeHead(200);
      res.write(Buffer.alloc(1000));
    });
    let read = 0;
    const stream = bodyStream(await fetch(`${local.url}/layer`), options(`${local.url}/layer`, { idleMs: 300, onData: (n) => (read += n) }));
    const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
    const { error, ms } = await rejection(pipeline(stream, sink));
    expect(error.message).toBe(`no data for 0.3 s reading test body from ${local.url}/layer`);
    expect(read).toBe(1000);
    expect(ms).toBeLessThan(2000);
  });

  it('quotes at most a couple of hundred characters of registry text, on one line', () => {
    expect(excerpt('short')).toBe('short');
    expect(excerpt('a\nb\r\n\tc')).toBe('a b c');
    const long = excerpt('y'.repeat(100_000));
    expect(long.length).toBeLessThan(240);
    expect(long).toMatch(/^y{200}… \(100000 characters\)$/);
  });
});

describe('a registry session against a hostile registry', () => {
  const repository = 'team/app';
  const ref = parseReference(`127.0.0.1:1/${repository}:v1`);
  const manifestPath = `/v2/${repository}/manifests/v1`;
  const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] } }));
  const configDescriptor = { mediaType: MediaType.ociConfig, digest: sha256Digest(config), size: config.length };
  const configPath = `/v2/${repository}/blobs/${configDescriptor.digest}`;

  function session(local: LocalServer, options: SessionOptions = {}): RegistrySession {
    return new RegistrySession(ref, [{ url: local.url, isMirror: false }], undefined, silentLogger(), { bodyIdleMs: 500, ...options });
  }

  it('refuses a manifest announced above 4 MiB and cuts an endless one off, naming the URL', async () => {
    const local = (await startServer()).on(manifestPath, (_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': 10 * 1024 ** 3 });
      void pourEndlessly(res);
    });
    const announced = await rejection(session(local).manifest('v1'));
    expect(announced.error.code).toBe('ResourceExhausted');
    expect(announced.error.message).toContain(`manifest v1 from ${local.url}${manifestPath} announces 10737418240 bytes (Content-Length), above the 4 MiB limit for manifests`);

    local.on(manifestPath, (_req, res) => {
      res.writeHead(200, { 'content-type': MediaType.ociManifest });
      void pourEndlessly(res);
    });
    const endless = await rejection(session(local).manifest('v1'));
    expect(endless.error.code).toBe('ResourceExhausted');
    expect(endless.error.message).toContain(`manifest v1 from ${local.url}${manifestPath} passed the 4 MiB limit for manifests`);
  });

  it('refuses an index entry whose descriptor is above 4 MiB without asking for it', async () => {
    const local = await startServer();
    const digest = `sha256:${'a'.repeat(64)}`;
    const { error } = await rejection(session(local).manifest(digest, { mediaType: MediaType.ociManifest, digest, size: 5 * 1024 * 1024 }));
    expect(error.code).toBe('ResourceExhausted');
    expect(error.message).toBe(`manifest ${digest}: its descriptor says 5242880 bytes, above the 4 MiB limit for manifests`);
    expect(local.requests).toEqual([]);
  });

  it('abandons a stalled manifest after the idle timeout, and forgets the request', async () => {
    const local = (await startServer()).on(manifestPath, (_req, res) => {
      res.writeHead(200, { 'content-length': 1000 });
      res.write('{"schemaVersion":');
    });
    const registry = session(local, { bodyIdleSetting: 'registry.pull_progress_timeout_seconds' });
    const pending = rejection(registry.manifest('v1'));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(registry.waitingOn()).toEqual([`${local.url}${manifestPath}`]);
    const { error, ms } = await pending;
    expect(error.code).toBe('Unavailable');
    expect(error.message).toContain(`no data for 0.5 s (registry.pull_progress_timeout_seconds) reading manifest v1 from ${local.url}${manifestPath}`);
    expect(ms).toBeLessThan(3000);
    expect(registry.waitingOn()).toEqual([]);
  });

  it('reads a config no further than its descriptor says, and never one above 8 MiB', async () => {
    const local = (await startServer()).on(configPath, (_req, res) => {
      res.writeHead(200);
      void pourEndlessly(res, config);
    });
    const long = await rejection(session(local).blobBytes(configDescriptor));
    expect(long.error.code).toBe('Internal');
    expect(long.error.message).toBe(`content verification failed for ${configDescriptor.digest}: more than the expected ${config.length} bytes`);

    local.on(configPath, (_req, res) => res.writeHead(200, { 'content-length': config.length + 10 }).end(Buffer.concat([config, Buffer.alloc(10)])));
    const announced = await rejection(session(local).blobBytes(configDescriptor));
    expect(announced.error.message).toContain(`announces Content-Length ${config.length + 10} but the descriptor says ${config.length} bytes`);

    local.on(configPath, (_req, res) => res.writeHead(200).end(config.subarray(0, 10)));
    const short = await rejection(session(local).blobBytes(configDescriptor));
    expect(short.error.message).toMatch(/content verification failed for sha256:[a-f0-9]{64}: got 10 bytes, expected \d+/);

    local.on(configPath, (_req, res) => res.end(config));
    expect((await session(local).blobBytes(configDescriptor)).equals(config)).toBe(true);

    const requests = local.requests.length;
    const huge = await rejection(session(local).blobBytes({ digest: configDescriptor.digest, size: BODY_LIMITS.config.bytes + 1 }));
    expect(huge.error.code).toBe('ResourceExhausted');
    expect(huge.error.message).toContain('above the 8 MiB limit for image configs');
    expect(local.requests.length).toBe(requests);
  });

  it('quotes a short piece of an error body, and reads none of one above 64 KiB', async () => {
    const message = `broken ${'z'.repeat(50_000)}`;
    const local = (await startServer()).on(manifestPath, (_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'UNKNOWN', message }] }));
    });
    const quoted = await rejection(session(local).manifest('v1'));
    expect(quoted.error.code).toBe('Unavailable');
    expect(quoted.error.message).toContain('500 Internal Server Error (UNKNOWN: broken zzz');
    expect(quoted.error.message.length).toBeLessThan(600);

    local.on(manifestPath, (_req, res) => {
      res.writeHead(500, { 'content-type': 'application/json' });
      void pourEndlessly(res, Buffer.from('{"errors":[{"code":"UNKNOWN","message":"'));
    });
    const endless = await rejection(session(local).manifest('v1'));
    expect(endless.error.message).toContain('500 Internal Server Error (error body over the 64 KiB limit for error bodies, not shown)');
    expect(endless.error.message.length).toBeLessThan(600);
  });

  it('refuses a token response above 1 MiB', async () => {
    const local = await startServer();
    local
      .on(manifestPath, (_req, res) => {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="${local.url}/token",service="test"` }).end();
      })
      .on('/token', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        void pourEndlessly(res, Buffer.from('{"token":"'));
      });
    const { error } = await rejection(session(local).manifest('v1'));
    expect(error.code).toBe('ResourceExhausted');
    expect(error.message).toMatch(/token response from http:\/\/127\.0\.0\.1:\d+\/token\?service=test&scope=\S+ passed the 1 MiB limit for token responses/);
  });

  it('stops a stalled request at once when its signal aborts, and keeps the abort’s reason', async () => {
    const local = (await startServer()).on(manifestPath, () => undefined);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new TscriError('Unavailable', 'watchdog fired')), 100);
    const { error, ms } = await rejection(session(local, { signal: controller.signal }).manifest('v1'));
    expect(error.message).toBe('watchdog fired');
    expect(ms).toBeLessThan(1000);
  });
});

describe('descriptors from a registry', () => {
  it('refuses digests tscri cannot verify and sizes that are not sizes', () => {
    const manifest = (config: object) => Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: [] }));
    const base = { mediaType: MediaType.ociConfig, digest: `sha256:${'b'.repeat(64)}`, size: 10 };
    expect(parseManifest(manifest(base), '').kind).toBe('image');
    expect(() => parseManifest(manifest({ ...base, digest: `sha256:../../${'c'.repeat(1000)}` }), '')).toThrow(/unsupported digest "sha256:\.\.\/\.\.\/c{60,80}…/);
    expect(() => parseManifest(manifest({ ...base, size: -1 }), '')).toThrow(/invalid size -1/);
    expect(() => parseManifest(manifest({ ...base, size: 1.5 }), '')).toThrow(/invalid size 1.5/);
  });
});

describe('timers that watch for progress', () => {
  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it('an idle timer fires once after a quiet period, and each touch postpones it', async () => {
    let fired = 0;
    const timer = new IdleTimer(200, () => (fired += 1));
    for (let i = 0; i < 5; i++) {
      await wait(80);
      timer.touch();
    }
    expect(fired).toBe(0);
    await wait(400);
    expect(fired).toBe(1);
    timer.stop();
  });

  it('a pull watchdog aborts its signal with what the pull waited for, unless stopped', async () => {
    const watchdog = new PullWatchdog('example.com/app:v1', 200);
    watchdog.describeWith(() => ['http://registry.example/v2/app/manifests/v1']);
    await wait(120);
    watchdog.progress();
    await wait(120);
    expect(watchdog.signal.aborted).toBe(false);
    await wait(250);
    expect(watchdog.signal.aborted).toBe(true);
    const reason = watchdog.signal.reason as TscriError;
    expect(reason.code).toBe('Unavailable');
    expect(reason.message).toBe(
      'pull of example.com/app:v1 made no progress for 0.2 s (registry.pull_progress_timeout_seconds); waiting on http://registry.example/v2/app/manifests/v1',
    );

    const stopped = new PullWatchdog('example.com/app:v1', 100);
    stopped.stop();
    await wait(200);
    expect(stopped.signal.aborted).toBe(false);
  });
});

describe('a layer another pull is unpacking', () => {
  it('stops being waited for when the joiner’s own signal aborts, and reports its bytes meanwhile', async () => {
    const root = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-layers-'));
    const layers = new LayerStore(new StoreLayout(root), silentLogger());
    const body = new PassThrough();
    const source = {
      descriptor: { mediaType: MediaType.ociLayer, digest: `sha256:${'d'.repeat(64)}`, size: 1_000_000 },
      diffId: `sha256:${'e'.repeat(64)}`,
      open: async () => body,
    };
    const owner = new AbortController();
    const joiner = new AbortController();
    let joinerBytes = 0;
    try {
      const owning = layers.ensure(source, () => undefined, owner.signal);
      owning.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 20));
      const joining = layers.ensure(source, (n) => (joinerBytes += n), joiner.signal);
      body.write(Buffer.alloc(1000));
      await new Promise((resolve) => setTimeout(resolve, 50));
      joiner.abort(new TscriError('Unavailable', 'joiner gave up'));
      await expect(joining).rejects.toThrow('joiner gave up');
      expect(joinerBytes).toBe(1000);
      owner.abort(new TscriError('Canceled', 'owner done'));
      await expect(owning).rejects.toBeDefined();
    } finally {
      await fs.rm(root, { recursive: true, force: true });
    }
  });
});

describe('the pull progress timeout setting', () => {
  it('defaults to 60 s, takes whole seconds from [registry], and refuses nonsense with the key’s name', () => {
    expect(defaultConfig().registry.pullProgressTimeoutSeconds).toBe(60);
    expect(parseConfig('[registry]\npull_progress_timeout_seconds = 2\n').registry.pullProgressTimeoutSeconds).toBe(2);
    for (const bad of ['0', '-1', '86401', '1.5', '"60"']) {
      expect(() => parseConfig(`[registry]\npull_progress_timeout_seconds = ${bad}\n`)).toThrow(/registry\.pull_progress_timeout_seconds/);
    }
  });
});
