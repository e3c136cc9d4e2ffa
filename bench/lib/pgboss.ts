/** pg-boss, the peer: one way to construct it for setup and for the measured workers. */
import { PgBoss } from "pg-boss";

/** A pg-boss instance on `url`; only setup migrates. No cron, no maintenance loop. */
export function bossFor(url: string, poolMax: number, migrate = false): PgBoss {
  return new PgBoss({
    connectionString: url,
    max: poolMax,
    migrate,
    schedule: false,
    supervise: false,
    application_name: "bench-pg-boss",
  });
}
