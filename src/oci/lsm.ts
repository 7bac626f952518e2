import type { Logger } from 'pino';
import { AppArmor, detectAppArmor } from './apparmor.js';
import { detectSelinux, Selinux, type SelinuxLabels } from './selinux.js';
import type { OciSpec } from './spec-types.js';

/** The Linux security modules containers are confined by, as this host has them. */
export interface SecurityModules {
  apparmor: AppArmor;
  selinux: Selinux;
}

/** Found once at daemon start: a few small reads below /sys and /etc. */
/**
 * SELinux labels are applied only when the config asks (`enable_selinux`), as containerd and
 * CRI-O do: tscri does not relabel rootfs, volumes or the pod's files, which an enforcing host
 * would deny a `container_t` process.
 */
export async function detectSecurityModules(log: Logger, options: { selinux: boolean }, root = '/'): Promise<SecurityModules> {
  const [apparmorHost, selinuxHost] = await Promise.all([detectAppArmor(root), detectSelinux(root)]);
  const selinux = options.selinux ? selinuxHost : undefined;
  log.info({ apparmor: apparmorHost !== undefined, selinux: selinux !== undefined, selinuxOnHost: selinuxHost !== undefined }, 'security modules');
  return { apparmor: new AppArmor(apparmorHost), selinux: new Selinux(selinux) };
}

/** What a process's spec carries from the security modules; absent fields leave it unconfined. */
export interface ProcessConfinement {
  apparmorProfile?: string;
  selinux?: SelinuxLabels;
}

export function applyConfinement(spec: OciSpec, confinement: ProcessConfinement | undefined): void {
  if (confinement?.apparmorProfile) spec.process.apparmorProfile = confinement.apparmorProfile;
  if (confinement?.selinux?.processLabel) spec.process.selinuxLabel = confinement.selinux.processLabel;
  if (confinement?.selinux?.mountLabel) spec.linux.mountLabel = confinement.selinux.mountLabel;
}
