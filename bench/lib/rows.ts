/**
 * The images the ingest section registers: the same rows go through registerImages (as JSON)
 * and through COPY (as text), and bench/sql/seed_images.sql makes the same shape for setup.
 */

export interface ImageRow {
  uri: string;
  external_id: string;
  width: number;
  height: number;
  priority: number;
  metadata: { camera: string; frame: number; split: string };
}

export function imageRow(tag: string, n: number): ImageRow {
  return {
    uri: `s3://bench-bucket/${tag}/frames/${String(n).padStart(8, "0")}.jpg`,
    external_id: `${tag}-${n}`,
    width: 1920,
    height: n % 4 === 0 ? 1200 : 1080,
    priority: Math.random(),
    metadata: { camera: `cam-${n % 8}`, frame: n, split: n % 10 === 0 ? "val" : "train" },
  };
}

/** The body of one registerImages request: images first..first+count-1. */
export function registerBody(tag: string, first: number, count: number): string {
  const images = Array.from({ length: count }, (_, i) => imageRow(tag, first + i));
  return JSON.stringify({ images });
}

/**
 * The same rows as COPY text (dataset_id, external_id, uri, width, height, priority, metadata).
 * None of the values holds a tab, newline or backslash, so no escaping is needed.
 */
export function copyText(datasetId: string, tag: string, first: number, count: number): string {
  let out = "";
  for (let i = 0; i < count; i++) {
    const r = imageRow(tag, first + i);
    out += `${datasetId}\t${r.external_id}\t${r.uri}\t${r.width}\t${r.height}\t${r.priority}\t` +
      `${JSON.stringify(r.metadata)}\n`;
  }
  return out;
}

/** The body of one setPriorities request, by image id. */
export function prioritiesBody(ids: string[]): string {
  return JSON.stringify({
    priorities: ids.map((id) => ({ image_id: id, priority: Math.random() })),
  });
}
