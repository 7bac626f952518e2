/**
 * SIGHUP: the config file is read again and what can change under running pods is applied;
 * what cannot (paths, the socket, runtimes, networks) is named for a restart. Nothing here
 * stops the daemon: a config that does not parse leaves the running one in force.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Config } from '../config/config.js';

/** Settings a running daemon takes over without a restart. */
const LIVE_SETTINGS = ['logLevel', 'registry'] as const;
type LiveSetting = (typeof LIVE_SETTINGS)[number];

export interface ConfigChanges {
  /** Settings that changed and are applied now. */
  live: LiveSetting[];
  /** Settings that changed but take effect only at the next start. */
  atRestart: string[];
}

/** What differs between the running config and the one just read, by top-level setting. */
export function changesBetween(running: Config, next: Config): ConfigChanges {
  const changes: ConfigChanges = { live: [], atRestart: [] };
  const keys = new Set([...Object.keys(running), ...Object.keys(next)] as Array<keyof Config>);
  for (const key of keys) {
    if (key === 'source' || isDeepStrictEqual(running[key], next[key])) continue;
    if ((LIVE_SETTINGS as readonly string[]).includes(key)) changes.live.push(key as LiveSetting);
    else changes.atRestart.push(key);
  }
  return changes;
}
