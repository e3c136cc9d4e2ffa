/**
 * Prometheus metrics in the text exposition format, with no dependency: counters, one latency
 * histogram, and gauges read at scrape time. Label sets stay small (route patterns, not paths).
 */

type Labels = Record<string, string>;

const escape = (v: string) =>
  v.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"');

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

class Counter {
  #values = new Map<string, { labels: Labels; value: number }>();
  constructor(readonly name: string, readonly help: string) {}
  inc(labels: Labels = {}, by = 1): void {
    this.series(labels).value += by;
  }
  /** The series of `labels`, to keep and increment without building its key again. */
  series(labels: Labels): { value: number } {
    const key = labelText(labels);
    let entry = this.#values.get(key);
    if (!entry) this.#values.set(key, entry = { labels, value: 0 });
    return entry;
  }
  get(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.value ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, value } of this.#values.values()) {
      lines.push(`${this.name}${labelText(labels)} ${value}`);
    }
    return lines.join("\n");
  }
}

const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

class Histogram {
  #series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; count: number; observe(s: number): void }
  >();
  constructor(readonly name: string, readonly help: string) {}
  observe(labels: Labels, seconds: number): void {
    this.series(labels).observe(seconds);
  }
  /** The series of `labels`, to keep and observe into without building its key again. */
  series(labels: Labels): { observe(seconds: number): void } {
    const key = labelText(labels);
    let s = this.#series.get(key);
    if (!s) {
      const series = { labels, counts: BUCKETS.map(() => 0), sum: 0, count: 0 };
      s = {
        ...series,
        observe(seconds: number) {
          for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]) this.counts[i]++;
          this.sum += seconds;
          this.count++;
        },
      };
      this.#series.set(key, s);
    }
    return s;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.#series.values()) {
      BUCKETS.forEach((le, i) => {
        lines.push(
          `${this.name}_bucket${labelText({ ...s.labels, le: String(le) })} ${s.counts[i]}`,
        );
      });
      lines.push(`${this.name}_bucket${labelText({ ...s.labels, le: "+Inf" })} ${s.count}`);
      lines.push(`${this.name}_sum${labelText(s.labels)} ${s.sum}`);
      lines.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return lines.join("\n");
  }
}

/** A gauge whose value is read when scraped. */
interface Gauge {
  name: string;
  help: string;
  read(): Array<[Labels, number]>;
}

export class Metrics {
  readonly requests = new Counter("http_requests_total", "HTTP requests by route and status");
  readonly latency = new Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route and status",
  );
  readonly claims = new Counter("claims_issued_total", "Claims (leases) handed to annotators");
  readonly annotations = new Counter(
    "annotations_created_total",
    "Annotations created, by source (human or machine)",
  );
  readonly webhookDeliveries = new Counter(
    "webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, retrying, failed (no retry left), gone (410)",
  );
  #gauges: Gauge[] = [];

  gauge(name: string, help: string, read: Gauge["read"]): void {
    this.#gauges.push({ name, help, read });
  }

  render(): string {
    const parts = [
      this.requests,
      this.latency,
      this.claims,
      this.annotations,
      this.webhookDeliveries,
    ].map((m) => m.render());
    for (const g of this.#gauges) {
      const lines = [`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`];
      for (const [labels, value] of g.read()) lines.push(`${g.name}${labelText(labels)} ${value}`);
      parts.push(lines.join("\n"));
    }
    return parts.join("\n") + "\n";
  }
}
