/**
 * StopPodSandbox and RemovePodSandbox as steps. Every step tolerates what is already gone,
 * so both are idempotent and also finish sandboxes a crash or a failed RunPodSandbox left
 * half-made or half-stopped:
 *
 *   stop:    [stopPause → unmount shm] ∥ [CNI DEL → remove netns] → record `stopped`
 *   remove:  stop → (containers removed) → delete pause container → forget
 */
import { promises as fs } from 'node:fs';
import type { Logger } from 'pino';
import { allOrFirstError } from '../util/parallel.js';
import { timeStep } from '../util/time.js';
import type { SandboxParts } from './deps.js';
import { attachmentOf } from './network.js';
import type { Sandbox, SandboxRecord } from './sandbox.js';

/** How long a stop waits for a SIGKILLed pause container to be reported gone. */
const PAUSE_EXIT_TIMEOUT_MS = 10_000;

/**
 * Kill the pause container, detach the network, remove the netns and unmount shm, then
 * write `stopped`. Resolves false when the record already said `stopped` (written only after
 * every step succeeded: nothing is left to do).
 */
export async function stopPod(parts: SandboxParts, sandbox: Readonly<Sandbox>, log: Logger): Promise<boolean> {
  const { record } = sandbox;
  if (record.phase === 'stopped') return false;
  const { host } = parts.deps;
  const { netnsPath, shmPath } = record;
  // CNI DEL needs the netns, not the pause process: the two halves run side by side.
  await allOrFirstError([
    timeStep('StopPodSandbox', 'pauseStop', () => stopPause(parts, sandbox, log)).then(async () => {
      if (shmPath) await timeStep('StopPodSandbox', 'shm', () => host.unmountShm(shmPath));
    }),
    detachNetwork(parts, record).then(async () => {
      if (netnsPath) await timeStep('StopPodSandbox', 'netns', () => host.removeNetns(netnsPath));
    }),
  ]);
  await parts.store.update(record.id, (r) => void (r.phase = 'stopped'));
  log.info('sandbox stopped');
  return true;
}

async function stopPause(parts: SandboxParts, sandbox: Readonly<Sandbox>, log: Logger): Promise<void> {
  const { runtime } = parts.deps;
  const id = sandbox.record.id;
  if (sandbox.pauseExit) return;
  if (!(await runtime.kill(id, 'KILL'))) return; // never created, or already gone
  const exit = await runtime.waitExit(id, PAUSE_EXIT_TIMEOUT_MS);
  if (!exit) {
    log.warn('pause container did not report its exit in time');
    return;
  }
  parts.store.observe(id, (s) => void (s.pauseExit ??= exit));
  // Stop waits for CNI DEL anyway: freeing runc's state now takes it off RemovePodSandbox.
  await runtime.release(id);
}

async function detachNetwork(parts: SandboxParts, record: SandboxRecord): Promise<void> {
  if (!record.netnsPath) return;
  await timeStep('StopPodSandbox', 'cni', () => parts.deps.network.tearDown(attachmentOf(record)));
}

/** After stopPod and the containers' removal: delete the pause container, then forget the sandbox. */
export async function removePod(parts: SandboxParts, record: SandboxRecord): Promise<void> {
  await timeStep('RemovePodSandbox', 'pauseDelete', () => parts.deps.runtime.delete(record.id));
  await forget(parts, record);
}

/** Drop the record and everything it named on disk, the name and the SELinux level. */
async function forget(parts: SandboxParts, record: SandboxRecord): Promise<void> {
  if (!(await removeRecord(parts, record.id))) return;
  parts.names.release(record.name, record.id);
  parts.deps.lsm.selinux.release(record.selinuxLevel);
}

/** Remove the sandbox's volatile directory and its record; false if it had none. */
export async function removeRecord(parts: SandboxParts, id: string): Promise<boolean> {
  await fs.rm(parts.deps.layout.sandboxStateDir(id), { recursive: true, force: true });
  return parts.store.remove(id);
}
