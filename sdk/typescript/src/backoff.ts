/**
 * The wait before reconnect attempt number attempt (0 for the first), in ms: min
 * doubled per attempt, capped at max, with "equal jitter": half of it fixed, half
 * uniformly random (random in [0, 1)). When a gateway restarts, all its clients lose
 * their connection at once; the random half spreads their reconnects over the window,
 * and the fixed half keeps any one client from hammering a server that is down.
 */
export function backoffDelay(attempt: number, min: number, max: number, random: number = Math.random()): number {
  let d = Math.max(min, 1);
  for (let i = 0; i < attempt && d < max; i++) d *= 2;
  if (d > max) d = max;
  const half = d / 2;
  return Math.round(half + random * (d - half));
}
