/**
 * What the command-line scripts share: a wrong invocation is a UsageError, answered with the
 * script's usage and exit code 2; any other failure prints `error: …` and exits 1.
 */

/** The arguments were wrong: the script prints its usage and exits 2. */
export class UsageError extends Error {}

/** Runs `run` with the script's arguments and turns its failure into the exit code. */
export async function main(run: (args: string[]) => Promise<unknown>, usage: string) {
  try {
    await run(Deno.args);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n\n${usage}`);
      Deno.exit(2);
    }
    console.error(`error: ${e instanceof Error ? e.message : String(e)}`);
    Deno.exit(1);
  }
}
