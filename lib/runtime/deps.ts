/** What the application needs from the outside world: built by main.ts, or by a test. */
import type { Db } from "../db/query.ts";
import type { Media } from "../media/index.ts";
import type { Config } from "./config.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

export interface Deps {
  db: Db;
  config: Config;
  log: Logger;
  metrics: Metrics;
  /** Browser-fetchable URLs for images (lib/media/). */
  media: Media;
  /** Set once shutdown starts: readiness turns 503. */
  shuttingDown?: () => boolean;
}
