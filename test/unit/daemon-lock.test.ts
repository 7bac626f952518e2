import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { lockDirectories, lockName } from '../../src/persistence/daemon-lock.js';

describe('one daemon per root and state', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'tscri-lock-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses a second holder, naming the first one’s pid, and frees the lock on release', async () => {
    const root = path.join(dir, 'root');
    const state = path.join(dir, 'state');
    const first = await lockDirectories([root, state]);
    await expect(lockDirectories([path.join(dir, 'other'), state])).rejects.toThrow(new RegExp(`another tscri daemon \\(pid ${process.pid}\\) is using .*state`));
    // A failed attempt holds nothing it took on the way.
    const other = await lockDirectories([path.join(dir, 'other')]);
    await other.release();
    await first.release();
    const again = await lockDirectories([root, state]);
    await again.release();
  });

  it('is freed by the kernel when its holder is killed', async () => {
    // A plain-JS holder binding the same name, as a daemon started from dist/ would.
    const real = await fs.realpath(dir);
    const code = `const net = require('node:net'); const fs = require('node:fs');
      net.createServer().listen(${JSON.stringify(lockName(real))}, () => {
        fs.writeFileSync(${JSON.stringify(path.join(real, 'tscri.pid'))}, process.pid + '\\n'); console.log('locked'); });`;
    const holder = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
    await expect(lockDirectories([dir])).rejects.toThrow(new RegExp(`pid ${holder.pid}`));
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const lock = await lockDirectories([dir]);
    await lock.release();
  });
});
