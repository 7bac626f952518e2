// Types of hack/lib/bench.mjs, for test/unit/bench-lib.test.ts.

export declare const RESULT_SCHEMA: 'tscri-bench/1';
export declare const OPERATIONS: readonly { name: string; group: 'pod' | 'container' | 'image'; label?: string }[];
export declare const FLOOR_OPERATIONS: readonly { name: string; label: string }[];
export declare const RUNTIMES: readonly ['tscri', 'containerd'];

export interface Summary {
  n: number;
  p50?: number;
  p90?: number;
  min?: number;
  max?: number;
  mean?: number;
  samples?: number[];
  [extra: string]: unknown;
}

export interface MemoryGroup {
  rss: number;
  unique: number;
  count?: number;
  names?: string[];
}

export interface RuntimeResult {
  operations: Record<string, Summary>;
  phases?: Record<string, number>;
  memory?: { podCount: number; daemon: MemoryGroup; monitors: MemoryGroup; pods: MemoryGroup; perPod: MemoryGroup; total: MemoryGroup };
  runPodSandboxSteps?: Record<string, Summary>;
  containerSteps?: Record<string, Summary>;
  leftovers?: string[];
}

export interface BenchResult {
  schema: string;
  date: string;
  host?: { os?: string; kernel?: string; cpuModel?: string; cores?: number; memoryBytes?: number; cgroup?: string };
  params?: { pods?: number; parallel?: number; pulls?: number; memoryPods?: number; warmup?: number; stopTimeoutSeconds?: number };
  tools?: Record<string, string | undefined>;
  images?: Record<string, { reference: string; layers: number; compressedBytes: number; unpackedBytes: number }>;
  floor?: { operations: Record<string, Summary> };
  runtimes: Partial<Record<'tscri' | 'containerd', RuntimeResult>>;
  ratios?: unknown;
}

export interface Ratios {
  operations?: Record<string, { p50: number | undefined; p90: number | undefined }>;
  memory?: Record<string, number | undefined>;
}

export declare function percentile(values: readonly number[], q: number): number;
export declare function summarize(samples: readonly number[]): Summary;
export declare function median(values: readonly number[]): number;
export declare function ratio(a: unknown, b: unknown): number | undefined;
export declare function formatRatio(r: number | undefined): string;
export declare function formatMs(v: number | undefined): string;
export declare function formatMB(bytes: number | undefined): string;
export declare function spread(values: readonly (number | undefined)[]): { min: number; max: number; spread: number | undefined } | undefined;

export declare function tomlString(value: string): string;
export declare function checkBenchSubnet(subnet: string): string;
export interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}
export declare function cniConflist(options: { name: string; bridge: string; subnet: string; dataDir: string }): Conflist;
export declare function pluginConfig(conflist: Conflist, index: number, prevResult?: unknown): Record<string, unknown>;
export declare function tscriConfig(options: {
  socket: string;
  root: string;
  state: string;
  sandboxImage: string;
  cniConfDir: string;
  cniBinDirs: string[];
  mirrorHost: string;
  mirrorEndpoint: string;
  cgroupParent: string;
  logLevel?: string;
}): string;
export declare function containerdConfig(options: {
  socket: string;
  root: string;
  state: string;
  optDir: string;
  runcRoot: string;
  sandboxImage: string;
  cniConfDir: string;
  cniBinDir: string;
  mirrorHost: string;
  mirrorEndpoint: string;
  logLevel?: string;
}): string;

export declare function splitRuleLine(line: string): string[];
export declare function networkRules(saveOutput: string, network: string): { rules: string[][]; chains: string[] };

export declare function runtimesOf(result: BenchResult): ('tscri' | 'containerd')[];
export declare function ratiosOf(result: BenchResult): Ratios;
export declare function renderText(result: BenchResult): string;
export declare function renderMarkdown(result: BenchResult): string;
export declare function renderComparison(results: BenchResult[]): string;
