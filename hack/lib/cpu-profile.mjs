// Where a V8 CPU profile (node --cpu-prof) spent its samples: self time by module and by
// function, for hack/bench.mjs --cpu-profile. An instrument, not part of the daemon.

/** Self time in ms per function and per module (node_modules package, dist/ folder or node internal), busiest first. */
export function summarizeProfile(profile, top = 15) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map();
  let totalUs = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    totalUs += delta;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const byFunction = new Map();
  const byModule = new Map();
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = nodes.get(id).callFrame;
    const module = moduleOf(url) ?? (functionName || '(anonymous)');
    const name = functionName || '(anonymous)';
    const fn = url ? `${name} ${module}:${lineNumber + 1}` : name;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
    byModule.set(module, (byModule.get(module) ?? 0) + us);
  }
  const ranked = (map) =>
    [...map]
      .filter(([name]) => !name.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, ms: us / 1000 }));
  const idleUs = byModule.get('(idle)') ?? 0;
  return { totalMs: totalUs / 1000, busyMs: (totalUs - idleUs) / 1000, modules: ranked(byModule), functions: ranked(byFunction) };
}

/** The package, dist/ folder or node: module a script URL belongs to. */
function moduleOf(url) {
  if (!url) return undefined;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1];
  const own = /\/dist\/([^/]+)/.exec(url);
  if (own) return `dist/${own[1]}`;
  return url.startsWith('node:') ? url : url.replace(/^file:\/\//, '');
}

/** The summary as lines of text. */
export function renderProfile(summary) {
  const pct = (ms) => `${((100 * ms) / summary.busyMs).toFixed(1).padStart(5)} %`;
  const lines = [`daemon CPU profile: ${summary.busyMs.toFixed(0)} ms busy of ${summary.totalMs.toFixed(0)} ms sampled (self time, share of busy)`];
  for (const [title, rows] of [['by module', summary.modules], ['by function', summary.functions]]) {
    lines.push(`  ${title}`);
    for (const row of rows) if (!row.name.startsWith('(idle)')) lines.push(`    ${row.ms.toFixed(0).padStart(7)} ms ${pct(row.ms)}  ${row.name}`);
  }
  return lines.join('\n');
}
