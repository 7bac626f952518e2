// Types of hack/lib/registry.mjs, for the e2e global setup.

export interface RunningRegistry {
  /** `127.0.0.1:<port>` */
  address: string;
  /** Its config, log and storage; deleted by stop(). */
  dir: string;
  stop(): Promise<void>;
}

/** A new registry on a free loopback port, its storage in `dir` (default: a new temp dir). */
export declare function startRegistry(options?: { dir?: string }): Promise<RunningRegistry>;
/** Stop the registry started in `dir` and delete `dir`. */
export declare function stopRegistry(dir: string): Promise<void>;
/** A loopback port nothing listens on right now. */
export declare function freePort(): Promise<number>;
