/** Where a command writes: injectable so tests can run commands in-process. */
export interface CommandIO {
  env: Record<string, string | undefined>;
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
  stdin: NodeJS.ReadableStream;
}

export function processIO(): CommandIO {
  return { env: process.env, stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
}

export function writeLine(stream: NodeJS.WritableStream, line: string): void {
  stream.write(`${line}\n`);
}
