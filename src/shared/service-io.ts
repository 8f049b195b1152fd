/**
 * What a long-running command (`fluxq worker`, `fluxq api`) gets from the CLI: its
 * environment, and a promise that resolves with the signal's name when the process is
 * asked to stop (SIGTERM/SIGINT). It returns the process's exit code.
 */
export interface ServiceIO {
  env: Record<string, string | undefined>;
  stopSignal: Promise<string>;
}

export type ServiceCommand = (io: ServiceIO) => Promise<number>;
