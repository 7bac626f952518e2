/** How a remote command ended, as the error stream reports it. */
export type CommandResult = { exitCode: number } | { error: Error };

/**
 * The error stream's content. From v4 on it is a Kubernetes Status object, also on success,
 * and a non-zero exit carries the code in details.causes; older protocols send text, only on
 * failure.
 */
export function statusMessage(result: CommandResult, structured: boolean): string | undefined {
  if (structured) return JSON.stringify(statusObject(result));
  if ('error' in result) return result.error.message;
  return result.exitCode === 0 ? undefined : `command terminated with non-zero exit code: ${result.exitCode}`;
}

function statusObject(result: CommandResult): Record<string, unknown> {
  if ('error' in result) {
    return { metadata: {}, status: 'Failure', message: result.error.message, reason: 'InternalError', code: 500 };
  }
  if (result.exitCode === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command, exit status ${result.exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(result.exitCode) }] },
  };
}
