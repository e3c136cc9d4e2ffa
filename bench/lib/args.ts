/**
 * The experiments' command lines (bench/experiments/): `--name value` options read from
 * Deno.args. `deno task bench` parses its own flags (bench/options.ts).
 */
const args = Deno.args;

/** A numeric option's value, or `fallback` when it is absent. */
export function flag(name: string, fallback: number): number {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : fallback;
}

/** A string option's value, or undefined when it is absent. */
export function option(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Every value of a repeatable option, in order. */
export function all(name: string): string[] {
  return args.flatMap((a, i) => a === name ? [args[i + 1]] : []);
}

/** Whether a switch (an option without a value) is given. */
export function has(name: string): boolean {
  return args.includes(name);
}
