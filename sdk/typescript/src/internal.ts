// The building blocks of the client, exported for its tests. Not part of the
// package's stable API: "@laneim/client/internal" may change in any release.
export { backoffDelay } from "./backoff.js";
export {
  batchEnd,
  batchMessages,
  decodeAck,
  decodeBatch,
  decodeError,
  decodeMark,
  decodeMember,
  decodePresenceChange,
  decodePresencePage,
  decodeReady,
  decodeRefreshed,
  decodeRoomChange,
  decodeRoomSeq,
  decodeRoomsPage,
  decodeTicks,
  decodeTyping,
  encodeFrame,
  parseFrame,
  validId,
  validNonce,
  type Batch,
  type Entry,
  type ServerFrame,
} from "./frames.js";
export { httpError } from "./http.js";
export { acceptBatch, type Accepted, type Gap } from "./seqtrack.js";
export { UnreadTracker } from "./unread.js";
