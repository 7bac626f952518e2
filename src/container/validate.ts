import type * as cri from '../api/cri.js';
import { MountPropagation } from '../api/generated/runtime/v1/MountPropagation.js';
import { Signal } from '../api/generated/runtime/v1/Signal.js';
import { SupplementalGroupsPolicy } from '../api/generated/runtime/v1/SupplementalGroupsPolicy.js';
import {
  checkAbsolutePath,
  checkEnum,
  checkList,
  checkRelativePath,
  checkStringMap,
  checkText,
  invalid,
  quote,
} from '../validation/fields.js';
import { checkUserNamespace } from '../sandbox/validate.js';
import {
  checkCapabilities,
  checkGroups,
  checkId,
  checkNamespaceOptions,
  checkPathList,
  checkResources,
  checkSeccompProfilePath,
  checkSecurityProfile,
  checkSelinux,
} from '../validation/linux.js';

/** Linux's ARG_MAX is 2 MiB for argv and environment together; kubelet stays far below. */
const MAX_ARGV_BYTES = 1024 * 1024;
const MAX_ENV_ENTRIES = 4096;
const MAX_MOUNTS = 512;
const MAX_DEVICES = 512;
const ID = { required: true, maxBytes: 128, singleLine: true } as const;

/**
 * Everything CreateContainer must refuse, checked before a name is reserved or a byte
 * written: what execve, the OCI spec or the kernel cannot take (NUL in argv or the
 * environment, relative mount targets, unknown capabilities and enums, numbers out of range)
 * and a log path that would leave the pod's log directory.
 */
export function validateCreateContainer(request: cri.CreateContainerRequest): asserts request is cri.CreateContainerRequest & { config: cri.ContainerConfig } {
  checkText('pod_sandbox_id', request.pod_sandbox_id, ID);
  const config = request.config;
  if (!config) throw invalid('config', 'is required');
  if (!config.metadata) throw invalid('config.metadata', 'is required');
  checkText('config.metadata.name', config.metadata.name, { required: true, maxBytes: 253, singleLine: true });
  if (!config.image) throw invalid('config.image', 'is required');
  checkText('config.image.image', config.image.image, { required: true, maxBytes: 4096, singleLine: true });
  // The program is command's first word, or the image's when command is empty.
  checkArgv('config', [...config.command, ...config.args], MAX_ARGV_BYTES, config.command.length > 0);
  checkAbsolutePath('config.working_dir', config.working_dir);
  checkList('config.envs', config.envs, MAX_ENV_ENTRIES, checkEnv);
  checkList('config.mounts', config.mounts, MAX_MOUNTS, checkMount);
  checkList('config.devices', config.devices, MAX_DEVICES, checkDevice);
  checkStringMap('config.labels', config.labels);
  checkStringMap('config.annotations', config.annotations);
  checkRelativePath('config.log_path', config.log_path);
  checkEnum('config.stop_signal', config.stop_signal, Object.values(Signal));
  checkLinux(config.linux);
}

/**
 * An exec's command: what execve can take. A streaming Exec's request waits in memory for
 * its client, so it gets a smaller bound than ExecSync's.
 */
export function validateExecCommand(field: string, cmd: readonly string[], maxBytes = MAX_ARGV_BYTES): void {
  if (cmd.length === 0) throw invalid(field, 'must name a command');
  checkArgv(field, cmd, maxBytes);
}

/**
 * The kernel's own limits on what execve takes: a program path of PATH_MAX and arguments of
 * MAX_ARG_STRLEN (32 pages) each. Beyond them a container could never start, and runc's
 * error, which quotes the program, would outgrow the pipe conmon reads it from only after
 * runc exits: the create would hang instead of failing.
 */
export const MAX_PROGRAM_BYTES = 4096;
const MAX_ARG_BYTES = 128 * 1024;

function checkArgv(field: string, argv: readonly string[], maxBytes = MAX_ARGV_BYTES, programFirst = true): void {
  let bytes = 0;
  argv.forEach((arg, i) => {
    if (arg.includes('\0')) throw invalid(`${field} argument ${i}`, `${quote(arg)} contains a NUL byte`);
    const length = Buffer.byteLength(arg);
    const isProgram = i === 0 && programFirst;
    const limit = isProgram ? MAX_PROGRAM_BYTES : MAX_ARG_BYTES;
    if (length > limit) throw invalid(`${field} argument ${i}`, `is ${length} bytes, more than the ${limit} the kernel takes${isProgram ? ' for a program path' : ''}`);
    bytes += length + 1;
  });
  if (bytes > maxBytes) throw invalid(field, `command line is ${bytes} bytes, more than ${maxBytes}`);
}

function checkEnv(kv: cri.KeyValue, field: string): void {
  checkText(`${field}.key`, kv.key, { required: true, maxBytes: 4096, singleLine: true });
  if (kv.key.includes('=')) throw invalid(`${field}.key`, `${quote(kv.key)} contains "="`);
  if (Buffer.isBuffer(kv.value) ? kv.value.includes(0) : String(kv.value).includes('\0')) {
    throw invalid(`${field}.value`, `of ${quote(kv.key)} contains a NUL byte`);
  }
}

function checkMount(mount: cri.Mount, field: string): void {
  checkAbsolutePath(`${field}.container_path`, mount.container_path, { required: true });
  const propagation = checkEnum(`${field}.propagation`, mount.propagation, Object.values(MountPropagation));
  if (mount.recursive_read_only) {
    // The API's own rule: recursively read-only only makes sense read-only and private.
    if (!mount.readonly) throw invalid(`${field}.recursive_read_only`, 'needs readonly');
    if (propagation !== 'PROPAGATION_PRIVATE') throw invalid(`${field}.recursive_read_only`, `needs PROPAGATION_PRIVATE, not ${propagation}`);
  }
  if (mount.image?.image) {
    checkText(`${field}.image.image`, mount.image.image, { maxBytes: 4096, singleLine: true });
    checkRelativePath(`${field}.image_sub_path`, mount.image_sub_path);
    return;
  }
  checkAbsolutePath(`${field}.host_path`, mount.host_path, { required: true });
}

function checkDevice(device: cri.Device, field: string): void {
  checkAbsolutePath(`${field}.container_path`, device.container_path, { required: true });
  checkAbsolutePath(`${field}.host_path`, device.host_path, { required: true });
  checkText(`${field}.permissions`, device.permissions, { pattern: /^[rwm]{0,3}$/, patternHint: 'a combination of r, w and m' });
}

function checkLinux(linux: cri.LinuxContainerConfig | null): void {
  if (!linux) return;
  checkResources('config.linux.resources', linux.resources);
  const security = linux.security_context;
  if (!security) return;
  const field = 'config.linux.security_context';
  checkCapabilities(`${field}.capabilities`, security.capabilities);
  checkNamespaceOptions(`${field}.namespace_options`, security.namespace_options, 'container');
  checkUserNamespace(security.namespace_options?.userns_options ?? null, `${field}.namespace_options.userns_options`);
  checkSelinux(`${field}.selinux_options`, security.selinux_options);
  checkId(`${field}.run_as_user`, security.run_as_user);
  checkId(`${field}.run_as_group`, security.run_as_group);
  checkText(`${field}.run_as_username`, security.run_as_username, { maxBytes: 256, noSpace: true, pattern: /^[^:]*$/, patternHint: 'a user name' });
  checkGroups(`${field}.supplemental_groups`, security.supplemental_groups);
  checkEnum(`${field}.supplemental_groups_policy`, security.supplemental_groups_policy, Object.values(SupplementalGroupsPolicy));
  checkText(`${field}.apparmor_profile`, security.apparmor_profile, { maxBytes: 4096, singleLine: true });
  checkSeccompProfilePath(`${field}.seccomp_profile_path`, security.seccomp_profile_path);
  checkSecurityProfile(`${field}.seccomp`, security.seccomp);
  checkSecurityProfile(`${field}.apparmor`, security.apparmor);
  checkPathList(`${field}.masked_paths`, security.masked_paths);
  checkPathList(`${field}.readonly_paths`, security.readonly_paths);
}
