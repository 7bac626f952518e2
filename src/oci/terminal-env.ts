/**
 * The TERM a process with a terminal gets when nothing else names one: the value containerd
 * and CRI-O set, so that programs written against either (shells, top, less) behave the same.
 */
export const TERMINAL_ENV = 'TERM=xterm';

/** `env` with TERM=xterm added, unless it sets TERM itself (to anything, empty included). */
export function withTerm(env: readonly string[]): string[] {
  return env.some((entry) => entry === 'TERM' || entry.startsWith('TERM=')) ? [...env] : [...env, TERMINAL_ENV];
}
