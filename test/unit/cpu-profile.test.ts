import { describe, expect, it } from 'vitest';
import { renderProfile, summarizeProfile } from '../../hack/lib/cpu-profile.mjs';

describe('the benchmark CPU profile summary', () => {
  it('adds self time by module and function, and leaves idle time out of both', () => {
    const frame = (id: number, functionName: string, url: string, lineNumber = 0) => ({ id, callFrame: { functionName, url, lineNumber } });
    const profile = {
      nodes: [
        frame(1, '(idle)', ''),
        frame(2, 'spawn', 'node:internal/child_process', 353),
        frame(3, 'parse', 'file:///x/node_modules/@grpc/grpc-js/build/a.js', 9),
        frame(4, 'save', 'file:///x/dist/store/records.js', 41),
      ],
      samples: [1, 2, 2, 3, 4, 1],
      timeDeltas: [5000, 3000, 3000, 2000, 1000, 5000],
    };
    const summary = summarizeProfile(profile);
    expect(summary).toMatchObject({ totalMs: 19, busyMs: 9 });
    expect(summary.modules).toEqual([
      { name: 'node:internal/child_process', ms: 6 },
      { name: '@grpc/grpc-js', ms: 2 },
      { name: 'dist/store', ms: 1 },
    ]);
    expect(summary.functions[0]).toEqual({ name: 'spawn node:internal/child_process:354', ms: 6 });
    expect(renderProfile(summary)).toContain(' 66.7 %  node:internal/child_process');
  });
});
