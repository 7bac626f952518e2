import { TscriError, type ErrorOptions } from '../../errors.js';

/** The plugin commands tscri issues. */
export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

export interface CniPluginErrorInit {
  /** The plugin's `type`, i.e. the executable's name. */
  plugin: string;
  command: CniCommand;
  /** The `code` of the plugin's error JSON; undefined when the plugin printed none. */
  cniCode?: number | undefined;
  /** The `msg` of the plugin's error JSON, or our own summary when it printed none. */
  cniMsg: string;
  /** The `details` of the plugin's error JSON, or stderr when it printed no JSON. */
  details?: string | undefined;
}

/**
 * A CNI plugin failed. The message carries the plugin's own msg and details, because it
 * ends up as the text of the gRPC error kubelet reports in the pod's events, and that text
 * is often the only thing an operator sees.
 */
export class CniPluginError extends TscriError {
  readonly plugin: string;
  readonly command: CniCommand;
  readonly cniCode: number | undefined;
  readonly cniMsg: string;
  readonly details: string;

  constructor(init: CniPluginErrorInit, options?: ErrorOptions) {
    super('Internal', describe(init), options);
    this.plugin = init.plugin;
    this.command = init.command;
    this.cniCode = init.cniCode;
    this.cniMsg = init.cniMsg;
    this.details = init.details ?? '';
  }
}

function describe(init: CniPluginErrorInit): string {
  const code = init.cniCode === undefined ? '' : ` (code ${init.cniCode})`;
  const details = init.details ? `: ${init.details}` : '';
  return `CNI plugin ${init.plugin} failed on ${init.command}${code}: ${init.cniMsg}${details}`;
}

/** A plugin printed something that is not a CNI result of a version we understand. */
export class CniResultError extends TscriError {
  constructor(message: string, options?: ErrorOptions) {
    super('Internal', `invalid CNI result: ${message}`, options);
  }
}

/** A network configuration (file or cached copy) that is not usable. */
export class CniConfigError extends TscriError {
  constructor(message: string, options?: ErrorOptions) {
    super('Internal', message, options);
  }
}
