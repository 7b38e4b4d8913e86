// Runs a real `laneim dev` for the end-to-end test: the binary built from this
// repository (or $LANEIM_BIN), on a free loopback port and a temporary data dir.

import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The repository root: dist-test/ is in sdk/typescript/. */
export const repoRoot = fileURLToPath(new URL("../../../", import.meta.url));

/** Builds bin into dir with `go build`, unless $LANEIM_BIN names one. */
export async function laneimBinary(dir: string): Promise<string> {
  const given = process.env["LANEIM_BIN"];
  if (given !== undefined && given !== "") return given;
  const bin = join(dir, "laneim");
  await run("go", ["build", "-o", bin, "./cmd/laneim"], { cwd: repoRoot, timeout: 10 * 60_000, maxBuffer: 16 << 20 });
  return bin;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr !== null ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export class LaneServer {
  readonly base: string;
  #proc: ChildProcess | undefined;
  #log: string[] = [];

  private constructor(
    readonly bin: string,
    readonly dataDir: string,
    readonly port: number,
  ) {
    this.base = `http://127.0.0.1:${port}`;
  }

  /** Builds (or finds) the binary and starts a server on a new data dir. */
  static async start(workDir: string): Promise<LaneServer> {
    const bin = await laneimBinary(workDir);
    const data = await mkdtemp(join(workDir, "data-"));
    const s = new LaneServer(bin, data, await freePort());
    await s.restart();
    return s;
  }

  /** Starts the server (again, on the same data dir and port) and waits for /healthz. */
  async restart(): Promise<void> {
    if (this.#proc !== undefined) throw new Error("server already running");
    const args = ["dev", "--data", this.dataDir, "--http", `127.0.0.1:${this.port}`, "--nats-listen", "none", "--rate-limit", "0"];
    const proc = spawn(this.bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.#proc = proc;
    const keep = (chunk: Buffer): void => {
      this.#log.push(...chunk.toString().split("\n").filter((l) => l !== ""));
      if (this.#log.length > 400) this.#log.splice(0, this.#log.length - 400);
    };
    proc.stdout?.on("data", keep);
    proc.stderr?.on("data", keep);
    proc.once("exit", () => {
      if (this.#proc === proc) this.#proc = undefined;
    });
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (this.#proc !== proc) throw new Error(`laneim dev exited at start:\n${this.log()}`);
      try {
        const res = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(2000) });
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        await this.stop();
        throw new Error(`laneim dev not healthy within 60 s:\n${this.log()}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Stops the server: SIGTERM (it drains, closing connections with 1001), SIGKILL after 15 s. */
  async stop(): Promise<void> {
    const proc = this.#proc;
    if (proc === undefined) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  }

  /** Kills the server at once if it runs (for process exit). */
  killNow(): void {
    this.#proc?.kill("SIGKILL");
  }

  /** A token of user signed with the server's secret by `laneim token`, expiring after ttl (a Go duration). */
  async token(user: string, ttl: string): Promise<string> {
    const { stdout } = await run(this.bin, ["token", "--data", this.dataDir, "--ttl", ttl, user], { timeout: 30_000 });
    return stdout.trim();
  }

  /** The server's last lines of output. */
  log(): string {
    return this.#log.join("\n");
  }
}

/** A temporary work dir, removed by the returned function. */
export async function workDir(): Promise<{ dir: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "laneim-sdk-e2e-"));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
