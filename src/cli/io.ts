/** What a command may touch of the outside world: injected so tests can capture it. */
export interface CliIo {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
}
