/** Types for cpu-profile.mjs (an instrument in hack/, tested from test/unit). */
export interface ProfileRow {
  name: string;
  ms: number;
}
export interface ProfileSummary {
  totalMs: number;
  busyMs: number;
  modules: ProfileRow[];
  functions: ProfileRow[];
}
export interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}
export function summarizeProfile(profile: CpuProfile, top?: number): ProfileSummary;
export function renderProfile(summary: ProfileSummary): string;
