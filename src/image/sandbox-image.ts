import { promises as fs } from 'node:fs';
import type { Logger } from 'pino';
import { FailedPreconditionError } from '../errors.js';
import { resolveUser } from '../oci/user.js';
import { isMountPoint, mountOverlay, unmountAll } from '../util/mount.js';
import type { SandboxImage } from './builtin-pause.js';
import type { DaemonLayout } from '../layout.js';
import type { ImageService } from './service.js';
import type { ImageRecord } from './store/images.js';
import { hexOf } from './store/layout.js';

const RETAIN_OWNER = 'sandbox-image';

/**
 * A pause image from a registry (`sandbox_image`): pulled on first use and pinned. Every pause
 * container shares one overlay of it; the spec keeps the root read-only per container, and
 * the shared upper layer only ever receives the mount points runc creates once.
 */
export class RegistrySandboxImage {
  private prepared: { id: string; image: Promise<SandboxImage> } | undefined;

  constructor(
    private readonly reference: string,
    private readonly images: ImageService,
    private readonly layout: DaemonLayout,
    private readonly log: Logger,
  ) {}

  async get(): Promise<SandboxImage> {
    const record = this.images.resolve(this.reference) ?? (await this.pull());
    if (this.prepared?.id !== record.id) {
      const image = this.prepare(record);
      this.prepared = { id: record.id, image };
      image.catch(() => (this.prepared = undefined));
    }
    return this.prepared.image;
  }

  /**
   * Unmount the shared rootfs when the daemon stops: running pause containers keep their own
   * view of it in their mount namespaces, and the next daemon mounts it again on demand.
   */
  async close(): Promise<void> {
    for (const entry of await fs.readdir(this.layout.pauseMounts).catch(() => [] as string[])) {
      await unmountAll(this.layout.pauseOverlay(entry).rootfs);
    }
  }

  private async pull(): Promise<ImageRecord> {
    this.log.info({ image: this.reference }, 'pulling the sandbox image');
    const id = await this.images.pull({ image: this.reference, annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' }, null, this.log);
    return this.images.get(id);
  }

  private async prepare(record: ImageRecord): Promise<SandboxImage> {
    this.images.retainLayers(RETAIN_OWNER, record.layers.map((l) => l.diffId));
    await this.images.pin(record.id);
    const { rootfs, upper, work } = this.layout.pauseOverlay(hexOf(record.id));
    if (!(await isMountPoint(rootfs).catch(() => false))) {
      await Promise.all([upper, work].map((dir) => fs.mkdir(dir, { recursive: true, mode: 0o755 })));
      await mountOverlay({ lowerDirs: this.images.layerDirs(record), upperDir: upper, workDir: work, target: rootfs });
    }
    const config = record.config.config ?? {};
    const args = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
    if (args.length === 0) throw new FailedPreconditionError(`sandbox image ${this.reference} has no entrypoint or command`);
    const user = await resolveUser(rootfs, config.User ?? '');
    return {
      ref: this.reference,
      rootfs,
      args,
      env: config.Env ?? [],
      cwd: config.WorkingDir || '/',
      user: { uid: user.uid, gid: user.gid },
    };
  }
}
