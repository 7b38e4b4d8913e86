/** Error codes a laneIM server sends (docs/protocol.md, "Errors"). */
export type ServerErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "too_large"
  | "rate_limited"
  | "muted"
  | "unavailable"
  | "internal";

/**
 * Codes the client raises itself; no server sends them.
 * - `closed`: the client was closed, or stopped for good (kicked, token refused).
 * - `connection_lost`: the connection dropped before a reply (requests other than
 *   `send` and `subscribe` are not retried).
 * - `timeout`: no reply in time.
 * - `gap`: a subscribed room's batch skipped seqs; the client resubscribes.
 * - `bad_frame`: the server sent something that is not protocol JSON.
 * - `token`: the token provider failed.
 */
export type ClientErrorCode = "closed" | "connection_lost" | "timeout" | "gap" | "bad_frame" | "token";

export type ErrorCode = ServerErrorCode | ClientErrorCode;

/** Details some errors carry. */
export interface LaneErrorDetails {
  /** HTTP status of a failed HTTP API call. */
  status?: number;
  /** WebSocket close code, for `closed` and `connection_lost`. */
  closeCode?: number;
  /** The room the error is about, when there is one. */
  room?: string;
}

/** Every failure of this package is a LaneError with a protocol or client code. */
export class LaneError extends Error {
  override readonly name = "LaneError";
  readonly code: ErrorCode | (string & {});
  readonly status: number | undefined;
  readonly closeCode: number | undefined;
  readonly room: string | undefined;

  constructor(code: ErrorCode | (string & {}), message: string, details: LaneErrorDetails = {}) {
    super(message);
    this.code = code;
    this.status = details.status;
    this.closeCode = details.closeCode;
    this.room = details.room;
  }
}

/** WebSocket close codes of docs/protocol.md. */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  Abnormal: 1006,
  TooLarge: 1009,
  NotIdentified: 4001,
  HeartbeatTimeout: 4002,
  Kicked: 4003,
  TooSlow: 4008,
  RateLimited: 4029,
  TooManyConnections: 4030,
} as const;
