import { describe, expect, it } from 'vitest';
import type * as cri from '../../src/api/cri.js';
import { containerStatusJson, sandboxStatusJson } from '../../src/cli/inspect.js';
import { cpuPercent, humanSize, inspectView, rfc3339, sampleMs } from '../../src/cli/output.js';
import { finishedProgressLine, progressLine } from '../../src/cli/progress.js';
import { CONTAINER_STATS_HEADER, POD_STATS_HEADER, containerStatsRows, podStatsRows } from '../../src/cli/stats.js';
import type { PullProgressSnapshot } from '../../src/image/progress.js';

const SECOND = 1_000_000_000n;

describe('times as the client prints them', () => {
  it('are RFC 3339 in UTC with only the fraction digits they need', () => {
    expect(rfc3339(String(1_700_000_000n * SECOND))).toBe('2023-11-14T22:13:20Z');
    expect(rfc3339(String(1_700_000_000n * SECOND + 120_000_000n))).toBe('2023-11-14T22:13:20.12Z');
    expect(rfc3339(1_700_000_000n * SECOND + 5n)).toBe('2023-11-14T22:13:20.000000005Z');
    expect(rfc3339('0')).toBe('0001-01-01T00:00:00Z');
  });
});

describe('CPU % from two samples', () => {
  const at = (seconds: bigint, usedNanos: bigint) => ({ timestamp: String(seconds * SECOND), usageCoreNanoSeconds: String(usedNanos) });

  it('is core time used over wall time passed, with two decimals', () => {
    expect(cpuPercent(at(10n, 0n), at(11n, SECOND / 4n))).toBe('25.00');
    expect(cpuPercent(at(10n, SECOND), at(12n, 5n * SECOND))).toBe('200.00');
  });

  it('is 0.00 for an idle container, a missing sample or samples taken at the same instant', () => {
    expect(cpuPercent(at(10n, 0n), at(11n, 0n))).toBe('0.00');
    expect(cpuPercent(undefined, at(11n, 5n))).toBe('0.00');
    expect(cpuPercent(at(11n, 5n), at(11n, 9n))).toBe('0.00');
  });
});

describe('sizes', () => {
  it('have three significant digits for images and four for stats, in decimal units', () => {
    expect(humanSize(1_234_567)).toBe('1.23MB');
    expect(humanSize(1_234_567, 4)).toBe('1.235MB');
    expect(humanSize(999)).toBe('999B');
    expect(humanSize(0, 4)).toBe('0B');
  });
});

function containerStats(id: string, name: string, seconds: bigint, cpuNanos: bigint, memory = 4_096_000): cri.ContainerStats {
  return {
    attributes: { id, metadata: { name, attempt: 0 }, labels: {}, annotations: {} },
    cpu: { timestamp: String(seconds * SECOND), usage_core_nano_seconds: { value: String(cpuNanos) }, usage_nano_cores: null, psi: null },
    memory: { timestamp: '0', working_set_bytes: { value: String(memory) } },
    writable_layer: { used_bytes: { value: '12345' }, inodes_used: { value: '7' } },
  } as unknown as cri.ContainerStats;
}

describe('tscri stats', () => {
  it("has crictl's columns and a row per container of both samples, sorted by id", () => {
    expect(CONTAINER_STATS_HEADER).toEqual(['CONTAINER', 'NAME', 'CPU %', 'MEM', 'DISK', 'INODES']);
    const before = [containerStats('b'.repeat(64), 'web', 10n, SECOND), containerStats('a'.repeat(64), 'db', 10n, SECOND)];
    const after = [
      containerStats('b'.repeat(64), 'web', 11n, SECOND + SECOND / 2n),
      containerStats('a'.repeat(64), 'db', 11n, SECOND),
      containerStats('c'.repeat(64), 'new', 11n, SECOND), // not in the first sample: no row
    ];
    expect(containerStatsRows(before, after, false)).toEqual([
      ['a'.repeat(13), 'db', '0.00', '4.096MB', '12.35kB', '7'],
      ['b'.repeat(13), 'web', '50.00', '4.096MB', '12.35kB', '7'],
    ]);
  });

  it('leaves out containers that use nothing unless --all', () => {
    const idle = [containerStats('d'.repeat(64), 'stopped', 10n, 0n, 0)];
    expect(containerStatsRows(idle, idle, false)).toEqual([]);
    expect(containerStatsRows(idle, idle, true)).toHaveLength(1);
  });
});

describe('tscri statsp', () => {
  const podStats = (id: string, name: string, seconds: bigint, cpuNanos: bigint) =>
    ({
      attributes: { id, metadata: { name, namespace: 'ns', uid: 'u', attempt: 0 }, labels: {}, annotations: {} },
      linux: {
        cpu: { timestamp: String(seconds * SECOND), usage_core_nano_seconds: { value: String(cpuNanos) } },
        memory: { working_set_bytes: { value: '2000000' } },
      },
    }) as unknown as cri.PodSandboxStats;

  it("has crictl's columns: the pod's name first, then its id", () => {
    expect(POD_STATS_HEADER).toEqual(['POD', 'POD ID', 'CPU %', 'MEM']);
    const rows = podStatsRows([podStats('e'.repeat(64), 'web', 1n, SECOND)], [podStats('e'.repeat(64), 'web', 3n, 2n * SECOND)]);
    expect(rows).toEqual([['web', 'e'.repeat(13), '50.00', '2MB']]);
  });
});

describe('sample durations', () => {
  it('take seconds and refuse what is not a positive number', () => {
    expect(sampleMs('1')).toBe(1000);
    expect(sampleMs('0.5')).toBe(500);
    expect(() => sampleMs('0')).toThrow(/--seconds/);
    expect(() => sampleMs('soon')).toThrow(/positive/);
  });
});

describe('inspect output', () => {
  it("puts status beside the verbose info's keys, parsed, with every object's keys sorted", () => {
    const view = inspectView({ state: 'SANDBOX_READY', id: 'x' }, { info: '{"z":1,"a":{"y":2,"b":3}}', runtimeHandler: '"runc"', note: 'plain' });
    expect(Object.keys(view)).toEqual(['info', 'note', 'runtimeHandler', 'status']);
    expect(JSON.stringify(view)).toBe('{"info":{"a":{"b":3,"y":2},"z":1},"note":"plain","runtimeHandler":"runc","status":{"id":"x","state":"SANDBOX_READY"}}');
  });

  const containerStatus = (state: string, started: string, finished: string) =>
    ({ id: 'c', state, created_at: String(1_700_000_000n * SECOND), started_at: started, finished_at: finished, exit_code: 0 }) as unknown as cri.ContainerStatus;

  it('shows container times as RFC 3339, and the zero time for what has not happened', () => {
    const running = containerStatusJson(containerStatus('CONTAINER_RUNNING', String(1_700_000_001n * SECOND), '0'));
    expect(running).toMatchObject({ createdAt: '2023-11-14T22:13:20Z', startedAt: '2023-11-14T22:13:21Z', finishedAt: '0001-01-01T00:00:00Z' });
    const created = containerStatusJson(containerStatus('CONTAINER_CREATED', '0', '0'));
    expect(created.startedAt).toBe('0001-01-01T00:00:00Z');
    const exited = containerStatusJson(containerStatus('CONTAINER_EXITED', String(1_700_000_001n * SECOND), String(1_700_000_002n * SECOND)));
    expect(exited.finishedAt).toBe('2023-11-14T22:13:22Z');
    const pod = sandboxStatusJson({ id: 'p', state: 'SANDBOX_READY', created_at: String(1_700_000_000n * SECOND) } as unknown as cri.PodSandboxStatus);
    expect(pod.createdAt).toBe('2023-11-14T22:13:20Z');
  });
});

describe('the pull progress bar', () => {
  const snapshot: PullProgressSnapshot = { reference: 'r', layers: 3, layersDone: 1, bytesTotal: 3_000_000, bytesDone: 1_000_000, bytesPerSecond: 500_000, elapsedMs: 2000 };

  it('shows bytes, layers and rate while it runs', () => {
    expect(progressLine(snapshot)).toBe(`[${'#'.repeat(10)}${'-'.repeat(20)}] 1MB/3MB  1/3 layers  500kB/s`);
  });

  it('ends complete even when the last snapshot seen was short of the end', () => {
    expect(finishedProgressLine(snapshot)).toBe(`[${'#'.repeat(30)}] 3MB/3MB  3/3 layers  done`);
    expect(finishedProgressLine(undefined)).toBe(`[${'#'.repeat(30)}] done`);
  });
});
