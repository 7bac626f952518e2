import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DgramSocket } from 'node-unix-socket';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { SystemdNotifier } from '../../src/service/notify.js';
import { changesBetween } from '../../src/service/reload.js';

const log = pino({ level: 'silent' });

describe('SystemdNotifier', () => {
  let dir: string;
  let receiver: DgramSocket;
  const received: string[] = [];

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-notify-'));
    receiver = new DgramSocket();
    receiver.on('data', (data: Buffer) => received.push(data.toString()));
    receiver.bind(path.join(dir, 'notify'));
  });

  afterAll(async () => {
    receiver.close();
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('sends states with a status line to the socket systemd names, and keeps it from children', async () => {
    process.env.NOTIFY_SOCKET = path.join(dir, 'notify');
    const notifier = new SystemdNotifier(log);
    expect(process.env.NOTIFY_SOCKET).toBeUndefined();
    await notifier.notify('READY=1', 'serving on /run/tscri/tscri.sock');
    await notifier.notify('STOPPING=1');
    notifier.close();
    for (let i = 0; i < 100 && received.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
    expect(received).toEqual(['READY=1\nSTATUS=serving on /run/tscri/tscri.sock', 'STOPPING=1']);
  });

  it('does nothing without NOTIFY_SOCKET, and never throws when systemd is gone', async () => {
    await expect(new SystemdNotifier(log, undefined).notify('READY=1')).resolves.toBeUndefined();
    await expect(new SystemdNotifier(log, path.join(dir, 'absent')).notify('READY=1')).resolves.toBeUndefined();
    await expect(new SystemdNotifier(log, '@abstract').notify('READY=1')).resolves.toBeUndefined();
  });
});

describe('changesBetween', () => {
  it('applies the log level and registry settings live and names the rest for a restart', () => {
    const running = parseConfig('');
    const next = parseConfig(`log_level = "debug"\nroot = "/srv/tscri"\n[registry.mirrors."docker.io"]\nendpoints = ["http://127.0.0.1:5000"]\n[cni]\nconf_dir = "/etc/cni/other"`);
    expect(changesBetween(running, next)).toEqual({ live: ['logLevel', 'registry'], atRestart: ['root', 'cni'] });
  });

  it('finds nothing in the same settings written in another order', () => {
    const a = parseConfig('[registry]\npull_progress_timeout_seconds = 30\nconfig_path = ""');
    const b = parseConfig('[registry]\nconfig_path = ""\npull_progress_timeout_seconds = 30');
    expect(changesBetween(a, { ...b, source: '/etc/tscri/config.toml' })).toEqual({ live: [], atRestart: [] });
  });
});
