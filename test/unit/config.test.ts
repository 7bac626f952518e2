import { describe, expect, it } from 'vitest';
import { defaultConfig, parseConfig } from '../../src/config/config.js';

describe('config loading', () => {
  it('uses the built-in defaults for an empty file', () => {
    const config = parseConfig('');
    expect(config).toEqual(defaultConfig());
    expect(config.socketPath).toBe('/run/tscri/tscri.sock');
    expect(config.root).toBe('/var/lib/tscri');
    expect(config.state).toBe('/run/tscri');
    expect(config.cni.confDir).toBe('/etc/cni/net.d');
    expect(config.cni.binDirs).toEqual(['/opt/cni/bin', '/usr/lib/cni']);
    expect(config.sandboxImage).toBe('');
  });

  it('reads every documented key', () => {
    const config = parseConfig(`
listen = "unix:///tmp/x/tscri.sock"
root = "/srv/tscri"
state = "/run/other"
sandbox_image = "registry.k8s.io/pause:3.9"
log_level = "debug"
cgroup_driver = "cgroupfs"
default_cgroup_parent = "/pods"
[runtime]
runc = "/usr/local/sbin/runc"
conmon = "/usr/local/bin/conmon"
[cni]
conf_dir = "/etc/cni/other"
bin_dirs = ["/opt/cni/bin"]
default_subnet = "10.88.5.0/24"
default_bridge = "br-test"
[registry.mirrors."registry.k8s.io"]
endpoints = ["http://127.0.0.1:5000", "https://mirror.example"]
[registry.mirrors."docker.io"]
endpoints = []
[streaming]
address = "0.0.0.0"
port = 10010
token_ttl_seconds = 30
`);
    expect(config.socketPath).toBe('/tmp/x/tscri.sock');
    expect(config.root).toBe('/srv/tscri');
    expect(config.state).toBe('/run/other');
    expect(config.sandboxImage).toBe('registry.k8s.io/pause:3.9');
    expect(config.logLevel).toBe('debug');
    expect(config.defaultCgroupParent).toBe('/pods');
    expect(config.runtime).toEqual({ conmon: '/usr/local/bin/conmon', defaultHandler: 'runc', handlers: { runc: { path: '/usr/local/sbin/runc', root: '/run/other/runc' } } });
    expect(config.cni.confDir).toBe('/etc/cni/other');
    expect(config.cni.binDirs).toEqual(['/opt/cni/bin']);
    expect(config.cni.defaultNetwork).toEqual({ name: 'tscri-default', bridge: 'br-test', subnet: '10.88.5.0/24' });
    expect(config.registry.mirrors).toEqual({
      'registry.k8s.io': { endpoints: ['http://127.0.0.1:5000', 'https://mirror.example'] },
      'docker.io': { endpoints: [] },
    });
    expect(config.streaming).toEqual({ address: '0.0.0.0', port: 10010, tokenTtlSeconds: 30 });
  });

  it('accepts a bare socket path for listen', () => {
    expect(parseConfig('listen = "/tmp/s.sock"').socketPath).toBe('/tmp/s.sock');
  });

  it('turns the default network off', () => {
    expect(parseConfig('[cni]\ndefault_network = false').cni.defaultNetwork).toBe(false);
  });

  it.each([
    ['rot = "/x"', /rot: unknown key/],
    ['root = "relative/dir"', /root: must be an absolute path/],
    ['log_level = "loud"', /log_level: must be one of/],
    ['listen = "tcp://127.0.0.1:1"', /listen must be unix/],
    ['[cni]\nbin_dirs = "/opt/cni/bin"', /cni\.bin_dirs: must be an array of strings/],
    ['[cni]\nbin_dirs = []', /at least one directory/],
    ['[cni]\ndefault_subnet = "10.88.0.0"', /not an IPv4 CIDR/],
    ['[registry.mirrors."x.io"]\nendpoints = ["ftp://x"]', /must be http:\/\/ or https:\/\//],
    ['[streaming]\nport = 70000', /port: must be between 0 and 65535/],
    ['root = ', /invalid TOML/],
    ['cgroup_driver = "systemd"\ndefault_cgroup_parent = "/tscri"', /default_cgroup_parent: with cgroup_driver = "systemd" it must be a slice name/],
    ['[runtime.handlers.Kata]\npath = "/bin/kata"', /runtime\.handlers\.Kata: a handler name must be a DNS label/],
    ['[runtime.handlers.crun]\nroot = "/run/crun"', /handlers\.crun\.path: is required/],
    ['[runtime.handlers.crun]\npath = "crun"\nsystemd = true', /handlers\.crun\.systemd: unknown key/],
    ['[runtime]\ndefault_handler = "kata"', /default_handler: "kata" is not a handler \(configured: runc\)/],
    ['[runtime.handlers.crun]\npath = "crun"\nroot = "/run/tscri/runc"', /handlers\.crun\.root: \/run\/tscri\/runc is also runc's/],
    ['[cdi]\nspec_dirs = ["etc/cdi"]', /cdi\.spec_dirs: must hold absolute paths/],
  ])('rejects %j naming the key', (text, message) => {
    expect(() => parseConfig(text)).toThrow(message);
  });

  it('defaults the cgroup parent to a slice under the systemd driver', () => {
    expect(parseConfig('cgroup_driver = "systemd"').defaultCgroupParent).toBe('tscri.slice');
    expect(parseConfig('cgroup_driver = "systemd"\ndefault_cgroup_parent = "pods.slice"').defaultCgroupParent).toBe('pods.slice');
    expect(parseConfig('').defaultCgroupParent).toBe('/tscri');
  });

  it('reads runtime handlers, each with its own root, and a default among them', () => {
    const config = parseConfig(`
state = "/run/x"
[runtime]
default_handler = "crun"
[runtime.handlers.crun]
path = "/usr/bin/crun"
[runtime.handlers.runc-debug]
path = "/opt/runc"
root = "/run/runc-debug"
`);
    expect(config.runtime.defaultHandler).toBe('crun');
    expect(config.runtime.handlers).toEqual({
      runc: { path: 'runc', root: '/run/x/runc' },
      crun: { path: '/usr/bin/crun', root: '/run/x/runtime-crun' },
      'runc-debug': { path: '/opt/runc', root: '/run/runc-debug' },
    });
    expect(parseConfig('[runtime.handlers.runc]\npath = "/opt/runc"').runtime.handlers.runc).toEqual({ path: '/opt/runc', root: '/run/tscri/runc' });
  });

  it('reads CDI spec directories, defaulting to /etc/cdi then /var/run/cdi', () => {
    expect(parseConfig('').cdi.specDirs).toEqual(['/etc/cdi', '/var/run/cdi']);
    expect(parseConfig('[cdi]\nspec_dirs = ["/srv/cdi/"]').cdi.specDirs).toEqual(['/srv/cdi/']);
    expect(parseConfig('[cdi]\nspec_dirs = []').cdi.specDirs).toEqual([]);
  });

  it('reads the registry hosts directory, auth file, import directory and log format', () => {
    const defaults = parseConfig('');
    expect(defaults.registry).toMatchObject({ configPath: '/etc/tscri/certs.d', authFile: '' });
    expect(defaults.images.importDir).toBe('');
    expect(defaults.logFormat).toBe('json');
    const config = parseConfig('log_format = "text"\n[registry]\nconfig_path = "/etc/containerd/certs.d"\nauth_file = "/root/.docker/config.json"\n[images]\nimport_dir = "/var/lib/tscri/import"');
    expect(config.registry).toMatchObject({ configPath: '/etc/containerd/certs.d', authFile: '/root/.docker/config.json' });
    expect(config.images.importDir).toBe('/var/lib/tscri/import');
    expect(config.logFormat).toBe('text');
    expect(parseConfig('[registry]\nconfig_path = ""').registry.configPath).toBe('');
    expect(() => parseConfig('[images]\nimport_dir = "import"')).toThrow(/images\.import_dir: must be an absolute path/);
    expect(() => parseConfig('log_format = "pretty"')).toThrow(/log_format: must be one of json, text/);
  });
});
