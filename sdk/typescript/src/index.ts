// @laneim/client: a TypeScript client of laneIM's protocol (docs/protocol.md).
export { Client } from "./client.js";
export type {
  ClientEvents,
  ClientOptions,
  ClientStats,
  CloseInfo,
  ReconnectInfo,
  SendOptions,
  SendResult,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { Emitter, type Listener } from "./emitter.js";
export { CloseCode, LaneError, type ClientErrorCode, type ErrorCode, type LaneErrorDetails, type ServerErrorCode } from "./errors.js";
export type { Ack, Mark, MemberChange, Message, MyRoom, PresenceChange, PresencePage, ReadMark, Ready, ReadyRoom, RoomAction, RoomChange, RoomsPage, Tick, Typing } from "./frames.js";
export {
  LaneHttp,
  LaneServerApi,
  defaultServerUser,
  tokenUser,
  wsUrl,
  type FetchLike,
  type FetchResponseLike,
  type HttpOptions,
  type Page,
  type PageOptions,
  type RoomDetails,
  type RoomInfo,
  type Sanction,
  type SanctionOptions,
  type SanctionPage,
  type ServerApiOptions,
  type TokenSource,
} from "./http.js";
export { newNonce } from "./nonce.js";
export type { RoomUnread } from "./unread.js";
