import { describe, expect, it } from 'vitest';
import { cleanRuncMessage, runtimeFailure } from '../../src/oci/runtime-errors.js';

describe('runc failures as errors a client can act on', () => {
  it('drops runc’s cleanup noise and repeated prefixes', () => {
    const raw =
      'cannot toggle freezer: cgroups not configured for container: cannot toggle freezer: cgroups not configured for container: lstat : no such file or directory: runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH';
    expect(cleanRuncMessage(raw)).toBe('runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH');
  });

  it('reads the messages out of runc’s log format', () => {
    expect(cleanRuncMessage('time="2026-01-01T00:00:00Z" level=error msg="exec failed: \\"x\\" not here"\n')).toBe('exec failed: "x" not here');
  });

  it.each([
    ['exec: "nope": executable file not found in $PATH', /command "nope" cannot be run in the container: executable file not found/],
    ['exec: "/etc": is a directory', /command "\/etc" cannot be run/],
    ['exec: "/no/such": stat /no/such: no such file or directory', /command "\/no\/such" cannot be run in the container: no such file or directory/],
    ['error during container init: write /proc/sys/net/core/somaxconn: invalid argument', /sysctl "net\.core\.somaxconn": the kernel refused the value \(invalid argument\)/],
    ['error during container init: mkdir /etc/passwd: not a directory', /"\/etc\/passwd" cannot be made a directory in the container: not a directory/],
    ['error during container init: error mounting "/dev/null" to rootfs at "/etc": mount /dev/null:/etc (via /proc/self/fd/6), flags: 0x5000: not a directory', /cannot mount "\/dev\/null" at "\/etc"/],
    ['unable to set memory limit to 1000 (current usage: 5000, peak usage: 6000): write /sys/fs/cgroup/memory/x/memory.limit_in_bytes: device or resource busy', /memory limit is below the container's current usage/],
    // The fuzzer's find: unified settings in an UpdateContainerResources on this v1 host.
    ['Setting back cgroup configs failed due to error: invalid configuration: cannot use unified on cgroup v1, your state.json and actual configs might be inconsistent.: invalid configuration: cannot use unified on cgroup v1', /resources\.unified names cgroup v2 settings, and this node runs cgroup v1/],
  ])('answers InvalidArgument for what the request caused: %s', (raw, message) => {
    const error = runtimeFailure('runc create failed', `unable to start container process: ${raw}`);
    expect(error.code).toBe('InvalidArgument');
    expect(error.message).toMatch(message);
  });

  it('answers Internal for runc’s own failures', () => {
    expect(runtimeFailure('runc create failed', 'unable to create cgroup: read-only file system').code).toBe('Internal');
  });
});
