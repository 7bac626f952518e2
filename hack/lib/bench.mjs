// The pure parts of hack/bench.mjs: statistics, the runtimes' configurations, and the report
// rendered from a result (text for the terminal, Markdown for the README). Nothing here touches
// the host, so test/unit/bench-lib.test.ts checks all of it.

/** The result format; a reader should refuse any other. */
export const RESULT_SCHEMA = 'tscri-bench/1';

/** The operations timed against each runtime, in report order, with their group. */
export const OPERATIONS = Object.freeze([
  { name: 'RunPodSandbox', group: 'pod' },
  { name: 'StopPodSandbox', group: 'pod' },
  { name: 'RemovePodSandbox', group: 'pod' },
  { name: 'PodLifecycle', group: 'pod', label: 'pod lifecycle (whole)' },
  { name: 'CreateContainer', group: 'container' },
  { name: 'StartContainer', group: 'container' },
  { name: 'StopContainer', group: 'container' },
  { name: 'RemoveContainer', group: 'container' },
  { name: 'ContainerLifecycle', group: 'container', label: 'container lifecycle (whole)' },
  { name: 'PullImage', group: 'image' },
]);

/** What is measured by hand, without any runtime: the floor under the operations above. */
export const FLOOR_OPERATIONS = Object.freeze([
  { name: 'runcCreate', label: 'runc create' },
  { name: 'runcStart', label: 'runc start' },
  { name: 'runcKillWait', label: 'runc kill + wait' },
  { name: 'runcDelete', label: 'runc delete' },
  { name: 'runcLifecycle', label: 'runc, the four' },
  { name: 'netnsAdd', label: 'ip netns add' },
  { name: 'netnsDel', label: 'ip netns del' },
  { name: 'cniAdd', label: 'CNI ADD (bridge, portmap)' },
  { name: 'cniDel', label: 'CNI DEL (portmap, bridge)' },
]);

export const RUNTIMES = Object.freeze(['tscri', 'containerd']);

// ---------------------------------------------------------------------------------------------
// Statistics

/**
 * The q-quantile (0 ≤ q ≤ 1) of `values` by linear interpolation between closest ranks (numpy's
 * default, R's type 7): the median of an even count is the mean of the middle two. NaN when
 * there are no values.
 */
export function percentile(values, q) {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is not within 0..1`);
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = q * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
}

const round2 = (v) => Math.round(v * 100) / 100;

/** Count, p50, p90, min, max and mean of samples in ms (rounded to 0.01), and the samples. */
export function summarize(samples) {
  if (samples.length === 0) return { n: 0 };
  const sum = samples.reduce((a, b) => a + b, 0);
  return {
    n: samples.length,
    p50: round2(percentile(samples, 0.5)),
    p90: round2(percentile(samples, 0.9)),
    min: round2(Math.min(...samples)),
    max: round2(Math.max(...samples)),
    mean: round2(sum / samples.length),
    samples: samples.map(round2),
  };
}

/** The median of a few readings (memory samples): robust to one taken during a GC. */
export function median(values) {
  return percentile(values, 0.5);
}

/** a / b, or undefined when either is missing or b is not a positive number. */
export function ratio(a, b) {
  if (typeof a !== 'number' || typeof b !== 'number' || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return undefined;
  return a / b;
}

/** `0.87×`, `1.4×`, `12×`: two significant digits, `–` when there is no ratio. */
export function formatRatio(r) {
  if (r === undefined || !Number.isFinite(r)) return '–';
  if (r >= 10) return `${Math.round(r)}×`;
  if (r >= 1) return `${r.toFixed(1)}×`;
  return `${r.toFixed(2)}×`;
}

/** Milliseconds as a table shows them: one decimal below 100 ms, whole above; `–` if absent. */
export function formatMs(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  return v < 100 ? v.toFixed(1) : String(Math.round(v));
}

/** Bytes in MiB, written MB as ps and top do: `12.3 MB`; `–` if absent. */
export function formatMB(bytes) {
  if (typeof bytes !== 'number' || !Number.isFinite(bytes)) return '–';
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * The spread of one figure over several runs: `{ min, max, spread }` with spread the relative
 * difference (max - min) / min; what a reader needs to tell movement from noise.
 */
export function spread(values) {
  const present = values.filter((v) => typeof v === 'number' && Number.isFinite(v));
  if (present.length === 0) return undefined;
  const min = Math.min(...present);
  const max = Math.max(...present);
  return { min, max, spread: min > 0 ? (max - min) / min : undefined };
}

// ---------------------------------------------------------------------------------------------
// Configurations

/** A TOML basic string: quotes, backslashes and control characters escaped. */
export function tomlString(value) {
  const escaped = String(value).replace(/[\\"\u0000-\u001f\u007f]/g, (c) => {
    const named = { '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t', '\b': '\\b', '\f': '\\f' }[c];
    return named ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return `"${escaped}"`;
}

/** A subnet both runtimes' pods may use: an IPv4 /24 inside 10.88.0.0/16. */
export function checkBenchSubnet(subnet) {
  const m = /^10\.88\.(\d{1,3})\.0\/24$/.exec(subnet);
  if (!m || Number(m[1]) > 255) throw new Error(`${subnet} is not a /24 inside 10.88.0.0/16`);
  return subnet;
}

/**
 * The CNI chain every runtime gets, with its own bridge, subnet and IPAM directory: tscri's
 * default network (bridge with gateway, NAT and hairpin, host-local, portmap), which is also
 * what containerd's packaged example configures.
 */
export function cniConflist({ name, bridge, subnet, dataDir }) {
  checkBenchSubnet(subnet);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/.test(bridge)) throw new Error(`bridge name ${bridge} is not a valid interface name`);
  return {
    cniVersion: '1.0.0',
    name,
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet }]], routes: [{ dst: '0.0.0.0/0' }], dataDir },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

/** One plugin's network config as a runtime hands it over: the chain's name and version added. */
export function pluginConfig(conflist, index, prevResult) {
  const plugin = { ...conflist.plugins[index], name: conflist.name, cniVersion: conflist.cniVersion };
  if (plugin.capabilities?.portMappings) plugin.runtimeConfig = { portMappings: [] };
  if (prevResult !== undefined) plugin.prevResult = prevResult;
  return plugin;
}

/**
 * tscri's config.toml for a run: everything under `dir`, its own CNI conf dir, the images'
 * host mirrored to the run's registry.
 */
export function tscriConfig({ socket, root, state, sandboxImage, cniConfDir, cniBinDirs, mirrorHost, mirrorEndpoint, cgroupParent, logLevel = 'warn' }) {
  return `# written by hack/bench.mjs for one run
listen = ${tomlString(`unix://${socket}`)}
root = ${tomlString(root)}
state = ${tomlString(state)}
sandbox_image = ${tomlString(sandboxImage)}
log_level = ${tomlString(logLevel)}
cgroup_driver = "cgroupfs"
default_cgroup_parent = ${tomlString(cgroupParent)}

[cni]
conf_dir = ${tomlString(cniConfDir)}
bin_dirs = [${cniBinDirs.map(tomlString).join(', ')}]
default_network = false

[registry.mirrors.${tomlString(mirrorHost)}]
endpoints = [${tomlString(mirrorEndpoint)}]
`;
}

/**
 * containerd 1.6's config.toml (version 2) for a run: its own root, state, sockets, opt (bin)
 * dir and runc root under the run's directory; the CRI plugin with the same sandbox image,
 * CNI chain and registry mirror as tscri, overlayfs, runc v2 with cgroupfs.
 */
export function containerdConfig({ socket, root, state, optDir, runcRoot, sandboxImage, cniConfDir, cniBinDir, mirrorHost, mirrorEndpoint, logLevel = 'warn' }) {
  const cri = 'plugins."io.containerd.grpc.v1.cri"';
  return `# written by hack/bench.mjs for one run
version = 2
root = ${tomlString(root)}
state = ${tomlString(state)}
oom_score = 0

[grpc]
  address = ${tomlString(socket)}

[ttrpc]
  address = ${tomlString(`${socket}.ttrpc`)}

[debug]
  address = ""
  level = ${tomlString(logLevel)}

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = ${tomlString(optDir)}

[${cri}]
  sandbox_image = ${tomlString(sandboxImage)}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  restrict_oom_score_adj = true
  enable_selinux = false

  [${cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [${cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [${cri}.containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = ${tomlString(runcRoot)}

  [${cri}.cni]
    bin_dir = ${tomlString(cniBinDir)}
    conf_dir = ${tomlString(cniConfDir)}
    max_conf_num = 1

  [${cri}.registry]
    config_path = ""

    [${cri}.registry.mirrors.${tomlString(mirrorHost)}]
      endpoint = [${tomlString(mirrorEndpoint)}]
`;
}

// ---------------------------------------------------------------------------------------------
// iptables

/**
 * The words of one `iptables-save` line as a shell would split them (double quotes group,
 * `\"` inside them is a quote), so a rule can be given back to `iptables -D`.
 */
export function splitRuleLine(line) {
  const words = [];
  let word = '';
  let inWord = false;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '\\' && (line[i + 1] === '"' || line[i + 1] === '\\')) word += line[++i];
      else if (c === '"') quoted = false;
      else word += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quoted) throw new Error(`unterminated quote in ${JSON.stringify(line)}`);
  if (inWord) words.push(word);
  return words;
}

/**
 * From `iptables-save -t nat` output: the rules the bridge plugin added for attachments of
 * `network` (its comment reads `name: "<network>" id: "<container>"`), as `-D` arguments, and
 * the per-attachment chains they jump to. What a pod whose CNI DEL never ran leaves behind.
 */
export function networkRules(saveOutput, network) {
  const marker = `name: "${network}" `;
  const rules = [];
  const chains = new Set();
  for (const line of saveOutput.split('\n')) {
    if (!line.startsWith('-A ')) continue;
    const words = splitRuleLine(line);
    const comment = words.indexOf('--comment');
    if (comment < 0 || !words[comment + 1]?.startsWith(marker)) continue;
    rules.push(['-D', ...words.slice(1)]);
    const jump = words.indexOf('-j');
    const target = jump >= 0 ? words[jump + 1] : undefined;
    if (target && /^CNI-[0-9a-f]{24}$/.test(target)) chains.add(target);
  }
  return { rules, chains: [...chains] };
}

// ---------------------------------------------------------------------------------------------
// Reports

const pad = (s, n) => String(s).padStart(n);
const padEnd = (s, n) => String(s).padEnd(n);

/** The runtimes a result has figures for, in the fixed order. */
export function runtimesOf(result) {
  return RUNTIMES.filter((name) => result.runtimes?.[name]);
}

/** Ratios tscri/containerd of p50 and p90 per operation and of memory; {} with one runtime. */
export function ratiosOf(result) {
  const t = result.runtimes?.tscri;
  const c = result.runtimes?.containerd;
  if (!t || !c) return {};
  const out = { operations: {}, memory: {} };
  for (const { name } of OPERATIONS) {
    const a = t.operations?.[name];
    const b = c.operations?.[name];
    if (!a?.n || !b?.n) continue;
    out.operations[name] = { p50: ratio(a.p50, b.p50), p90: ratio(a.p90, b.p90) };
  }
  if (t.memory && c.memory) {
    out.memory = {
      daemonRss: ratio(t.memory.daemon.rss, c.memory.daemon.rss),
      daemonUnique: ratio(t.memory.daemon.unique, c.memory.daemon.unique),
      totalRss: ratio(t.memory.total.rss, c.memory.total.rss),
      totalUnique: ratio(t.memory.total.unique, c.memory.total.unique),
    };
  }
  return out;
}

function headerLines(result) {
  const h = result.host ?? {};
  const p = result.params ?? {};
  const pull = result.images?.pull;
  const tools = result.tools ?? {};
  const lines = [
    `${result.date} · ${h.os ?? 'Linux'} · kernel ${h.kernel} · ${h.cpuModel} × ${h.cores} cores · ${h.memoryBytes ? `${(h.memoryBytes / 2 ** 30).toFixed(1)} GB` : '?'} RAM · cgroup ${h.cgroup}`,
    `${p.pods} pods and ${p.pods} containers, ${p.parallel} in parallel (after ${p.warmup} untimed); ${p.pulls} pulls of a ${pull?.layers}-layer image (${formatMB(pull?.compressedBytes)} compressed, ${formatMB(pull?.unpackedBytes)} unpacked); memory with ${p.memoryPods} pause pods; StopContainer timeout ${p.stopTimeoutSeconds} s`,
  ];
  const versions = Object.entries(tools)
    .filter(([, v]) => v)
    .map(([k, v]) => `${k} ${v}`);
  if (versions.length) lines.push(versions.join(' · '));
  return lines;
}

/** The report for a terminal: latency table, memory table, floor, in fixed-width columns. */
export function renderText(result) {
  const names = runtimesOf(result);
  const both = names.length === 2;
  const ratios = ratiosOf(result);
  const out = [...headerLines(result), ''];

  const opWidth = 28;
  let head = padEnd('latency, ms', opWidth);
  for (const name of names) head += ` │ ${pad(`${name} p50`, 15)} ${pad('p90', 6)}`;
  if (both) head += ` │ ${pad('tscri/containerd p50', 20)} ${pad('p90', 6)}`;
  out.push(head);
  for (const { name, label } of OPERATIONS) {
    if (!names.some((rt) => result.runtimes[rt].operations?.[name]?.n)) continue;
    let line = padEnd(label ?? name, opWidth);
    for (const rt of names) {
      const s = result.runtimes[rt].operations?.[name];
      line += ` │ ${pad(formatMs(s?.p50), 15)} ${pad(formatMs(s?.p90), 6)}`;
    }
    if (both) {
      const r = ratios.operations[name];
      line += ` │ ${pad(formatRatio(r?.p50), 20)} ${pad(formatRatio(r?.p90), 6)}`;
    }
    out.push(line);
  }

  if (names.some((rt) => result.runtimes[rt].memory)) {
    out.push('');
    const memWidth = 40;
    let mhead = padEnd(`memory, ${result.params?.memoryPods} pause pods`, memWidth);
    for (const rt of names) mhead += ` │ ${pad(`${rt} RSS`, 14)} ${pad('unique', 9)}`;
    if (both) mhead += ` │ ${pad('ratio RSS', 10)} ${pad('unique', 7)}`;
    out.push(mhead);
    const row = (label, pick, ratioKeys) => {
      let line = padEnd(label, memWidth);
      for (const rt of names) {
        const m = result.runtimes[rt].memory;
        const v = m ? pick(m) : undefined;
        line += ` │ ${pad(formatMB(v?.rss), 14)} ${pad(formatMB(v?.unique), 9)}`;
      }
      if (both) line += ` │ ${pad(ratioKeys ? formatRatio(ratios.memory[ratioKeys[0]]) : '', 10)} ${pad(ratioKeys ? formatRatio(ratios.memory[ratioKeys[1]]) : '', 7)}`;
      out.push(line);
    };
    row('daemon', (m) => m.daemon, ['daemonRss', 'daemonUnique']);
    row('monitors (conmon / containerd-shim)', (m) => m.monitors);
    row('pod processes (pause)', (m) => m.pods);
    row('per pod (monitor + pause)', (m) => m.perPod);
    row('total', (m) => m.total, ['totalRss', 'totalUnique']);
    const counts = names.map((rt) => {
      const m = result.runtimes[rt].memory;
      return m ? `${rt}: ${m.monitors.count} ${m.monitors.names.join('/') || 'monitors'}, ${m.pods.count} pod processes` : '';
    });
    out.push(`  (${counts.filter(Boolean).join('; ')}; unique: resident pages counted once)`);
  }

  const floor = result.floor?.operations;
  if (floor && Object.keys(floor).length) {
    out.push('');
    out.push(`${padEnd('floor, ms (by hand, one at a time)', opWidth + 12)} │ ${pad('p50', 6)} ${pad('p90', 6)}`);
    for (const { name, label } of FLOOR_OPERATIONS) {
      const s = floor[name];
      if (!s?.n) continue;
      out.push(`${padEnd(label, opWidth + 12)} │ ${pad(formatMs(s.p50), 6)} ${pad(formatMs(s.p90), 6)}`);
    }
  }

  const stepTables = [
    ["tscri RunPodSandbox's steps, ms", result.runtimes?.tscri?.runPodSandboxSteps],
    ["tscri CreateContainer and StartContainer's steps, ms", result.runtimes?.tscri?.containerSteps],
  ];
  for (const [title, steps] of stepTables) {
    if (!steps || Object.keys(steps).length === 0) continue;
    out.push('', `${padEnd(title, opWidth + 12)} │ ${pad('p50', 6)} ${pad('p90', 6)}`);
    for (const [name, s] of Object.entries(steps)) out.push(`${padEnd(`  ${name}`, opWidth + 12)} │ ${pad(formatMs(s.p50), 6)} ${pad(formatMs(s.p90), 6)}`);
  }

  for (const rt of names) {
    const leftovers = result.runtimes[rt].leftovers ?? [];
    if (leftovers.length) out.push('', `${rt} left behind (removed by the benchmark): ${leftovers.join('; ')}`);
  }
  return out.join('\n');
}

/** The same report as Markdown tables, for the README's performance section. */
export function renderMarkdown(result) {
  const names = runtimesOf(result);
  const both = names.length === 2;
  const ratios = ratiosOf(result);
  const out = headerLines(result).map((line) => `${line}  `);
  out.push('');
  const cols = ['operation, ms', ...names.flatMap((rt) => [`${rt} p50`, `${rt} p90`]), ...(both ? ['tscri/containerd p50', 'p90'] : [])];
  out.push(`| ${cols.join(' | ')} |`, `| ${cols.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
  for (const { name, label } of OPERATIONS) {
    if (!names.some((rt) => result.runtimes[rt].operations?.[name]?.n)) continue;
    const cells = [label ?? name];
    for (const rt of names) {
      const s = result.runtimes[rt].operations?.[name];
      cells.push(formatMs(s?.p50), formatMs(s?.p90));
    }
    if (both) cells.push(formatRatio(ratios.operations[name]?.p50), formatRatio(ratios.operations[name]?.p90));
    out.push(`| ${cells.join(' | ')} |`);
  }
  if (names.some((rt) => result.runtimes[rt].memory)) {
    out.push('');
    const mcols = [`memory, ${result.params?.memoryPods} pause pods`, ...names.map((rt) => `${rt} RSS (unique)`), ...(both ? ['tscri/containerd RSS (unique)'] : [])];
    out.push(`| ${mcols.join(' | ')} |`, `| ${mcols.map((_, i) => (i === 0 ? '---' : '---:')).join(' | ')} |`);
    const row = (label, pick, ratioKeys) => {
      const cells = [label];
      for (const rt of names) {
        const m = result.runtimes[rt].memory;
        const v = m ? pick(m) : undefined;
        cells.push(v ? `${formatMB(v.rss)} (${formatMB(v.unique)})` : '–');
      }
      if (both) cells.push(ratioKeys ? `${formatRatio(ratios.memory[ratioKeys[0]])} (${formatRatio(ratios.memory[ratioKeys[1]])})` : '');
      out.push(`| ${cells.join(' | ')} |`);
    };
    row('daemon', (m) => m.daemon, ['daemonRss', 'daemonUnique']);
    row('per pod (monitor + pause)', (m) => m.perPod);
    row('total', (m) => m.total, ['totalRss', 'totalUnique']);
  }
  const floor = result.floor?.operations;
  if (floor && Object.keys(floor).length) {
    out.push('', '| floor, ms (one at a time) | p50 | p90 |', '| --- | ---: | ---: |');
    for (const { name, label } of FLOOR_OPERATIONS) {
      const s = floor[name];
      if (s?.n) out.push(`| ${label} | ${formatMs(s.p50)} | ${formatMs(s.p90)} |`);
    }
  }
  return out.join('\n');
}

/**
 * Several results of the same workload side by side: per runtime and operation the p50 of
 * each run and their spread, then memory totals. What `--compare` prints.
 */
export function renderComparison(results) {
  const out = [`${results.length} runs: ${results.map((r) => r.date).join(', ')}`, ''];
  const names = RUNTIMES.filter((rt) => results.every((r) => r.runtimes?.[rt]));
  for (const rt of names) {
    out.push(`${padEnd(`${rt} p50, ms`, 28)} │ ${results.map((_, i) => pad(`run ${i + 1}`, 8)).join(' ')} │ spread`);
    for (const { name, label } of OPERATIONS) {
      const values = results.map((r) => r.runtimes[rt].operations?.[name]?.p50);
      if (values.every((v) => v === undefined)) continue;
      const s = spread(values);
      out.push(`${padEnd(label ?? name, 28)} │ ${values.map((v) => pad(formatMs(v), 8)).join(' ')} │ ${s?.spread === undefined ? '–' : `${(s.spread * 100).toFixed(0)}%`}`);
    }
    for (const [label, pick] of [
      ['memory: daemon RSS, MB', (m) => m.daemon.rss],
      ['memory: total RSS, MB', (m) => m.total.rss],
      ['memory: total unique, MB', (m) => m.total.unique],
    ]) {
      const values = results.map((r) => (r.runtimes[rt].memory ? pick(r.runtimes[rt].memory) : undefined));
      if (values.every((v) => v === undefined)) continue;
      const s = spread(values);
      out.push(`${padEnd(label, 28)} │ ${values.map((v) => pad(formatMB(v).replace(' MB', ''), 8)).join(' ')} │ ${s?.spread === undefined ? '–' : `${(s.spread * 100).toFixed(0)}%`}`);
    }
    out.push('');
  }
  if (names.length === 2) {
    out.push(`${padEnd('tscri/containerd p50', 28)} │ ${results.map((_, i) => pad(`run ${i + 1}`, 8)).join(' ')}`);
    const perRun = results.map(ratiosOf);
    for (const { name, label } of OPERATIONS) {
      const values = perRun.map((r) => r.operations?.[name]?.p50);
      if (values.every((v) => v === undefined)) continue;
      out.push(`${padEnd(label ?? name, 28)} │ ${values.map((v) => pad(formatRatio(v), 8)).join(' ')}`);
    }
    for (const [label, key] of [['memory: total RSS', 'totalRss'], ['memory: total unique', 'totalUnique']]) {
      const values = perRun.map((r) => r.memory?.[key]);
      if (values.some((v) => v !== undefined)) out.push(`${padEnd(label, 28)} │ ${values.map((v) => pad(formatRatio(v), 8)).join(' ')}`);
    }
  }
  return out.join('\n').trimEnd();
}
