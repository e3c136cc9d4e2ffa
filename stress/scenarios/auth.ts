import type { Result, Scenario } from "../lib/scenario.ts";

export const authScenario: Scenario = {
  name: "auth",
  run(): Promise<Result> {
    return Promise.resolve({ test: "auth", load: "todo", faults: "", violations: [], notes: [] });
  },
};
