/** The bench's flags: sizes, rounds, PostgreSQL setups, sections to skip, experiment switches. */
import { type Setup, SETUPS } from "./lib/database.ts";

export interface Options {
  quick: boolean;
  json?: string;
  /** Images in the big dataset (and rows / jobs for the ceiling and the peer). */
  images: number;
  /** Concurrent annotators for the headline comparison. */
  concurrency: number;
  lowConcurrency: number;
  /** Cycles each system runs at `concurrency`, over all rounds. */
  cycles: number;
  rounds: number;
  /**
   * Warm-up cycles of ours (the lean client) on its own big dataset before the rounds; fetch and
   * fused then warm up with 500 each on theirs.
   */
  warmupCycles: number;
  lowCycles: number;
  /** Cycles per scale run: `scaleRounds` rounds of a small run and a big run, interleaved. */
  scaleCycles: number;
  scaleRounds: number;
  /** Images in each of the scale section's small datasets (one per round). */
  smallImages: number;
  /** Images registered (and priorities set) in the ingest section. */
  ingestImages: number;
  /** Workers the HTTP annotators are spread over. */
  loadWorkers: number;
  /** Images each of the mixed-load section's two registerImages streams sends. */
  mixedImages: number;
  /** Annotator cycles of the mixed-load section, after its ingest. */
  mixedCycles: number;
  /** The PostgreSQL setups the whole bench runs on, one after the other. */
  setups: Setup[];
  skip: Set<string>;
  serverEnv: Record<string, string>;
  driver: boolean;
  /** Load pg_stat_statements and report the heaviest statements of the headline rounds. */
  pgStats: boolean;
  /** Skip the ANALYZE after the warm-up (to measure plans cached on empty tables). */
  staleStats: boolean;
  /** SQL files run after the migrations: a schema variant to measure, not the shipped schema. */
  dbSetup: string[];
  /**
   * One webhook subscribed to annotation.created on every dataset, sent to a receiver on
   * 127.0.0.1 in the bench process: the cycle with its outbox insert and its deliveries.
   */
  webhook: boolean;
  /**
   * Presigned S3 URLs in every claim answer (issue 17): the server gets an AWS region and static
   * keys (AWS's documented example keys: signing is local, nothing is sent), and the bench's
   * images are s3:// URIs.
   */
  media: boolean;
  /**
   * The annotated datasets' access: `members` (a new dataset's default: every claim and submit
   * looks its caller up in dataset_members) or `open` (no lookup).
   */
  access: "members" | "open";
}

export const SECTIONS = [
  "fetch",
  "fused",
  "ceiling",
  "peer",
  "low",
  "scale",
  "ingest",
  "mixed",
  "review",
];

const USAGE = `usage: deno task bench [--quick] [--json FILE] [options]
  --quick               100,000 images and fewer cycles (CI size)
  --json FILE           write every figure as JSON
  --images N            images in the big dataset (default 1,000,000; quick 100,000)
  --concurrency N       annotators for the headline runs (default 32)
  --cycles N            cycles per system at that concurrency, over all rounds
  --rounds N            interleaved rounds of the cycle's systems (default 3)
  --warmup-cycles N     ours' warm-up cycles on its own big dataset, not measured (default 4,000)
  --setups LIST         PostgreSQL setups, comma-separated: embedded (the embedded server, its
                        defaults), tuned (Debian PostgreSQL 15, production-like settings);
                        default both, --quick embedded only
  --skip LIST           comma-separated: ${SECTIONS.join(", ")}
  --driver              run the naive cycle through the driver even when pgbench exists
  --stale-stats         no ANALYZE after the warm-up (plans cached on empty tables)
  --db-setup FILE       run this SQL after the migrations (repeatable): a schema variant
  --pg-stats            load pg_stat_statements; print the heaviest statements of the rounds
  --load-workers N      workers the annotators are spread over (default 2)
  --mixed-images N      images each of the mixed-load section's 2 streams registers
                        (default 50,000; quick 20,000)
  --server-env K=V      extra environment for the server (repeatable), e.g. DB_POOL_MAX=4
  --webhook             one webhook on annotation.created, delivered to a receiver on 127.0.0.1
  --media               presigned s3:// URLs in every claim answer (AWS_REGION and static keys)
  --access A            the annotated datasets' access: members (default; the annotators are
                        made their members) or open
With DATABASE_URL set, the one setup is a scratch database created on that server (CREATEDB
needed) and dropped at the end.`;

export function parseArgs(args: string[]): Options {
  const quick = args.includes("--quick");
  const o: Options = {
    quick,
    images: quick ? 100_000 : 1_000_000,
    concurrency: 32,
    lowConcurrency: 8,
    cycles: quick ? 9_000 : 30_000,
    rounds: 3,
    warmupCycles: 4_000,
    lowCycles: quick ? 3_000 : 8_000,
    scaleCycles: quick ? 1_500 : 5_000,
    scaleRounds: 4,
    smallImages: 10_000,
    ingestImages: quick ? 100_000 : 1_000_000,
    loadWorkers: 2,
    mixedImages: quick ? 20_000 : 50_000,
    mixedCycles: quick ? 3_000 : 10_000,
    setups: quick ? ["embedded"] : [...SETUPS],
    skip: new Set(),
    serverEnv: {},
    driver: false,
    pgStats: false,
    dbSetup: [],
    staleStats: false,
    webhook: false,
    media: false,
    access: "members",
  };
  const count = (flag: string, v: string, min = 1) => {
    const n = Number(v.replaceAll("_", "").replaceAll(",", ""));
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag}: an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < args.length; i++) {
    let arg = args[i];
    let inline: string | undefined;
    const eq = arg.indexOf("=");
    if (arg.startsWith("--") && eq > 0) [arg, inline] = [arg.slice(0, eq), arg.slice(eq + 1)];
    const value = () => {
      const v = inline ?? args[++i];
      if (v === undefined) throw new Error(`${arg} needs a value\n${USAGE}`);
      return v;
    };
    switch (arg) {
      case "--quick":
        break;
      case "--json":
        o.json = value();
        break;
      case "--images":
        o.images = count(arg, value(), 1_000);
        break;
      case "--concurrency":
        o.concurrency = count(arg, value());
        break;
      case "--cycles":
        o.cycles = count(arg, value());
        break;
      case "--rounds":
        o.rounds = count(arg, value());
        break;
      case "--warmup-cycles":
        o.warmupCycles = count(arg, value());
        break;
      case "--skip":
        for (const s of value().split(",")) {
          if (!SECTIONS.includes(s)) throw new Error(`--skip: unknown section ${s}\n${USAGE}`);
          o.skip.add(s);
        }
        break;
      case "--driver":
        o.driver = true;
        break;
      case "--webhook":
        o.webhook = true;
        break;
      case "--media":
        o.media = true;
        break;
      case "--stale-stats":
        o.staleStats = true;
        break;
      case "--db-setup":
        o.dbSetup.push(value());
        break;
      case "--pg-stats":
        o.pgStats = true;
        break;
      case "--setups": {
        const names = value().split(",");
        const unknown = names.find((n) => !(SETUPS as readonly string[]).includes(n));
        if (unknown) throw new Error(`--setups: unknown setup ${unknown}\n${USAGE}`);
        o.setups = [...new Set(names as Setup[])];
        break;
      }
      case "--mixed-images":
        o.mixedImages = count(arg, value(), 1_000);
        break;
      case "--access": {
        const v = value();
        if (v !== "members" && v !== "open") throw new Error(`--access: members or open\n${USAGE}`);
        o.access = v;
        break;
      }
      case "--load-workers":
        o.loadWorkers = count(arg, value());
        break;
      case "--server-env": {
        const [k, ...v] = value().split("=");
        if (!k || !v.length) throw new Error(`--server-env: KEY=VALUE\n${USAGE}`);
        o.serverEnv[k] = v.join("=");
        break;
      }
      case "--help":
      case "-h":
        console.log(USAGE);
        Deno.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${args[i]}\n${USAGE}`);
    }
  }
  // The most images the runs take from one big dataset: the lean cycle's with its warm-up and the
  // low section's (fetch and fused each have their own), or the scale section's.
  const used = Math.max(o.warmupCycles + o.cycles + o.lowCycles, o.scaleRounds * o.scaleCycles);
  if (used > o.images) throw new Error(`--images ${o.images}: the runs would use ${used} images`);
  if (o.mixedCycles > o.mixedImages) {
    throw new Error(`--mixed-images ${o.mixedImages}: the annotators take ${o.mixedCycles}`);
  }
  return o;
}
