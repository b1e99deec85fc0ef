// How a bench child process hands its result to run.mjs: one marked JSON line on stdout, whatever else is logged.
const MARKER = "BENCH_RESULT ";

/** Prints `result` (or the error) as the child's one result line; sets a failing exit code on error. */
export function report(result) {
  if (result instanceof Error) {
    process.exitCode = 1;
    result = { error: `${result.name}: ${result.message}`.split("\n")[0] };
  }
  process.stdout.write(`${MARKER}${JSON.stringify(result)}\n`);
}

/** The result a child printed, or undefined if it printed none. */
export function parseReport(stdout) {
  const line = stdout.split("\n").find((l) => l.startsWith(MARKER));
  return line === undefined ? undefined : JSON.parse(line.slice(MARKER.length));
}
