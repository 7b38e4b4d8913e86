import { batchEnd, type Batch } from "./frames.js";

/** A range of seqs a subscribed room skipped: after+1 .. next-1 are missing. */
export interface Gap {
  room: string;
  /** The last seq delivered. */
  after: number;
  /** The first seq of the batch that arrived. */
  next: number;
}

export interface Accepted {
  /** What the application gets: the batch without the entries it already had; undefined for nothing. */
  deliver: Batch | undefined;
  /** The last seq delivered after this batch (undefined while the baseline is unknown). */
  last: number | undefined;
  /** Entries dropped as already delivered. */
  dropped: number;
  /** Set when the batch starts beyond last + 1: nothing of it is delivered. */
  gap?: Gap;
}

/**
 * Decides what of batch b a subscribed room delivers, given last, the last seq
 * delivered (undefined: no baseline yet, after a subscribe without since whose
 * answer has not come). Entries at or below last are duplicates (a catch-up
 * overlapping live messages, a redelivery after a reconnect) and are cut off the
 * front. A batch starting beyond last + 1 is a gap: nothing of it is delivered, so
 * that order is kept; the caller resubscribes with since = last, which delivers the
 * missing messages and this batch's again.
 */
export function acceptBatch(last: number | undefined, b: Batch): Accepted {
  const n = b.msgs.length;
  if (n === 0) return { deliver: undefined, last, dropped: 0 };
  const end = batchEnd(b);
  if (last === undefined) return { deliver: b, last: end, dropped: 0 };
  if (end <= last) return { deliver: undefined, last, dropped: n };
  if (b.seq > last + 1) {
    return { deliver: undefined, last, dropped: 0, gap: { room: b.room, after: last, next: b.seq } };
  }
  if (b.seq <= last) {
    // Entries are relative to the batch's ts, which stays the base: only seq moves.
    const skip = last - b.seq + 1;
    return { deliver: { ...b, seq: last + 1, msgs: b.msgs.slice(skip) }, last: end, dropped: skip };
  }
  return { deliver: b, last: end, dropped: 0 };
}
