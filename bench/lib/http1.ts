/**
 * A lean HTTP/1.1 keep-alive client on one TCP connection, one request at a time: what the
 * annotators use, so the load generator (which shares the machine's cores with the server and
 * PostgreSQL) costs as little CPU as it can, as pgbench does for the raw-SQL ceiling. `fetch`
 * costs about four times as much CPU per request (bench/README.md). Understands what the server
 * sends: a status line, headers, and a body framed by content-length or chunked encoding.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const CRLFCRLF = [13, 10, 13, 10];

export interface Answer {
  status: number;
  body: string;
}

export class Http1Client {
  #conn?: Deno.TcpConn;
  #buf = new Uint8Array(64 * 1024);
  /** Bytes of #buf received and not yet consumed: #buf[#start, #end). */
  #start = 0;
  #end = 0;

  constructor(readonly hostname: string, readonly port: number) {}

  static fromUrl(base: string): Http1Client {
    const u = new URL(base);
    return new Http1Client(u.hostname, Number(u.port || 80));
  }

  async connect(): Promise<void> {
    this.#conn = await Deno.connect({ hostname: this.hostname, port: this.port });
    this.#conn.setNoDelay(true);
  }

  close(): void {
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
    this.#conn = undefined;
  }

  /** `headers`: extra header lines, each ending in \r\n. */
  async request(method: string, path: string, headers = "", body?: string): Promise<Answer> {
    if (!this.#conn) await this.connect();
    const bytes = body === undefined ? undefined : encoder.encode(body);
    const head = `${method} ${path} HTTP/1.1\r\nhost: ${this.hostname}:${this.port}\r\n` +
      headers + `content-length: ${bytes?.length ?? 0}\r\n\r\n`;
    await this.#write(bytes ? concat(encoder.encode(head), bytes) : encoder.encode(head));
    return await this.#readAnswer();
  }

  async #write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) off += await this.#conn!.write(data.subarray(off));
  }

  /** Reads more bytes into the buffer (growing it when full); false at end of stream. */
  async #fill(): Promise<boolean> {
    if (this.#start > 0 && this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      const live = this.#buf.subarray(this.#start, this.#end);
      const bigger = new Uint8Array(Math.max(this.#buf.length, live.length * 2));
      bigger.set(live);
      this.#buf = bigger;
      this.#end = live.length;
      this.#start = 0;
    }
    const n = await this.#conn!.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  #indexOf(pattern: number[], from: number): number {
    outer: for (let i = from; i + pattern.length <= this.#end; i++) {
      for (let j = 0; j < pattern.length; j++) {
        if (this.#buf[i + j] !== pattern[j]) continue outer;
      }
      return i;
    }
    return -1;
  }

  async #readAnswer(): Promise<Answer> {
    let at: number;
    while ((at = this.#indexOf(CRLFCRLF, this.#start)) < 0) {
      if (!(await this.#fill())) throw new Error("connection closed before the answer's head");
    }
    const head = decoder.decode(this.#buf.subarray(this.#start, at)).toLowerCase();
    this.#start = at + 4;
    const status = Number(head.slice(9, 12));
    const length = /\r\ncontent-length: *(\d+)/.exec(head);
    let body: string;
    if (length) {
      body = await this.#readBytes(Number(length[1]));
    } else if (/\r\ntransfer-encoding: *chunked/.test(head)) {
      body = await this.#readChunked();
    } else if (status === 204 || status === 304) {
      body = "";
    } else {
      throw new Error(`an answer without content-length: ${head}`);
    }
    if (/\r\nconnection: *close/.test(head)) this.close();
    return { status, body };
  }

  async #readBytes(n: number): Promise<string> {
    return decoder.decode(await this.#take(n));
  }

  /** The next `n` bytes (a view valid until the next read). */
  async #take(n: number): Promise<Uint8Array> {
    while (this.#end - this.#start < n) {
      if (!(await this.#fill())) throw new Error("connection closed inside a body");
    }
    const bytes = this.#buf.subarray(this.#start, this.#start + n);
    this.#start += n;
    return bytes;
  }

  async #readLine(): Promise<string> {
    let at: number;
    while ((at = this.#indexOf([13, 10], this.#start)) < 0) {
      if (!(await this.#fill())) throw new Error("connection closed inside a chunk");
    }
    const line = decoder.decode(this.#buf.subarray(this.#start, at));
    this.#start = at + 2;
    return line;
  }

  async #readChunked(): Promise<string> {
    let body: Uint8Array = new Uint8Array(0);
    while (true) {
      const size = parseInt(await this.#readLine(), 16);
      if (size === 0) {
        await this.#readLine();
        return decoder.decode(body);
      }
      body = concat(body, await this.#take(size));
      await this.#readLine();
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
