/**
 * tscri as a service: readiness told to systemd through NOTIFY_SOCKET, SIGHUP reloading what
 * can change live (and never ending the daemon), and hack/install.sh putting the package, the
 * unit and a config in place (the unit checked by systemd-analyze) and taking them away.
 */
import { execFile } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { DgramSocket } from 'node-unix-socket';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { findExecutable } from '../../src/util/executable.js';
import { REPO, sleep, startTestDaemon, tempDir, type TestDaemon } from './harness.js';
import { LOCAL_REGISTRY } from './images.js';

const run = promisify(execFile);

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

describe('readiness and reload', () => {
  let daemon: TestDaemon;
  let receiver: DgramSocket;
  const notes: string[] = [];

  beforeAll(async () => {
    const dir = await tempDir('notify-');
    receiver = new DgramSocket();
    receiver.on('data', (data: Buffer) => notes.push(data.toString()));
    receiver.bind(path.join(dir, 'notify'));
    daemon = await startTestDaemon({ env: { NOTIFY_SOCKET: path.join(dir, 'notify') } });
  });

  afterAll(async () => {
    await daemon?.stop();
    receiver?.close();
  });

  const logLines = () => daemon.logs.split('\n').filter(Boolean).map((line) => JSON.parse(line) as Record<string, unknown>);
  const hangUp = () => process.kill(daemon.pid!, 'SIGHUP');

  it('tells systemd it is ready once the socket serves', async () => {
    const ready = await waitFor('READY=1', () => notes.find((note) => note.startsWith('READY=1')));
    expect(ready).toMatch(/^READY=1\nSTATUS=serving on \S+tscri\.sock$/);
  });

  it('reloads the log level and the registry settings on SIGHUP, and keeps serving', async () => {
    const image = 'mirrored.invalid/tscri-test/busybox:1.0';
    await expect(daemon.images('PullImage', { image: { image } }, 20_000)).rejects.toThrow();
    const original = await fs.readFile(daemon.configFile, 'utf8');
    const changed = original.replace('log_level = "debug"', 'log_level = "info"') + `[registry.mirrors."mirrored.invalid"]\nendpoints = ["http://${LOCAL_REGISTRY}"]\n`;
    await fs.writeFile(daemon.configFile, changed);
    const before = notes.length;
    hangUp();
    const reloaded = await waitFor('the reload line', () => logLines().find((line) => line.msg === 'configuration reloaded'));
    expect(reloaded).toMatchObject({ level: 'info', signal: 'SIGHUP', applied: ['logLevel', 'registry'], needRestart: [] });
    await waitFor('RELOADING=1 then READY=1', () => (notes.length >= before + 2 ? true : undefined));
    expect(notes.slice(before).map((note) => note.split('\n')[0])).toEqual(['RELOADING=1', 'READY=1']);

    const pulled = await daemon.images('PullImage', { image: { image } });
    expect(pulled.image_ref).toMatch(/^sha256:/);
    // At info, the debug lines of that pull are no longer written.
    const pullLines = logLines().slice(logLines().indexOf(reloaded));
    expect(pullLines.some((line) => line.level === 'debug')).toBe(false);
  });

  it('keeps the running configuration when the file no longer parses, and names what needs a restart', async () => {
    const good = await fs.readFile(daemon.configFile, 'utf8');
    await fs.writeFile(daemon.configFile, `${good}\nno_such_key = 1\n`);
    hangUp();
    const refused = await waitFor('the refusal', () => logLines().find((line) => line.msg === 'configuration not reloaded; the running one stays'));
    expect(refused).toMatchObject({ level: 'error' });
    expect(JSON.stringify(refused.err)).toMatch(/no_such_key: unknown key/);
    await daemon.runtime('Version', { version: 'v1' });

    await fs.writeFile(daemon.configFile, good.replace('log_level = "info"', 'log_level = "info"\nsandbox_image = "registry.invalid/pause:3.10"'));
    const count = logLines().filter((line) => line.msg === 'configuration reloaded').length;
    hangUp();
    const again = await waitFor('a second reload', () => logLines().filter((line) => line.msg === 'configuration reloaded')[count]);
    expect(again).toMatchObject({ applied: [], needRestart: ['sandboxImage'] });
    await daemon.runtime('Version', { version: 'v1' });
  });
});

describe('hack/install.sh', () => {
  let base: string;
  let options: string[];

  beforeAll(async () => {
    base = await tempDir('install-');
    options = ['--prefix', path.join(base, 'usr'), '--sysconfdir', path.join(base, 'etc'), '--unitdir', path.join(base, 'systemd'), '--no-start'];
  });

  it('installs tscri on PATH with a unit systemd accepts and a config, and uninstalls them', async () => {
    await run(path.join(REPO, 'hack/install.sh'), options, { timeout: 300_000 });
    const tscri = path.join(base, 'usr/bin/tscri');
    expect((await run(tscri, ['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    const unit = await fs.readFile(path.join(base, 'systemd/tscri.service'), 'utf8');
    expect(unit).toContain(`ExecStart=${tscri} daemon --config ${path.join(base, 'etc/tscri/config.toml')}`);
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^KillMode=process$/m);
    expect(unit).toMatch(/^Restart=always$/m);
    // The installed config is the commented defaults: a daemon reads it as they are.
    const config = await fs.readFile(path.join(base, 'etc/tscri/config.toml'), 'utf8');
    expect(parseConfig(config)).toEqual(parseConfig(''));
    if (await findExecutable('systemd-analyze')) {
      await run('systemd-analyze', ['verify', path.join(base, 'systemd/tscri.service')]);
    }

    await run(path.join(REPO, 'hack/install.sh'), ['--uninstall', '--purge', ...options], { timeout: 120_000 });
    expect(existsSync(tscri)).toBe(false);
    expect(existsSync(path.join(base, 'usr/lib/node_modules/tscri'))).toBe(false);
    expect(existsSync(path.join(base, 'systemd/tscri.service'))).toBe(false);
    expect(existsSync(path.join(base, 'etc/tscri'))).toBe(false);
  }, 400_000);
});
