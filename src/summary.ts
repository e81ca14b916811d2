/**
 * The native summaries of a channel (its header and participant table) as the public
 * `ChannelSummary`, with each participant's lag worked out. Used by `Channel.stats` and
 * `list`.
 * @internal
 */
import type { NativeParticipant, NativeSummary } from './native.js';
import type { ChannelSummary, Participant } from './types.js';

function participantOf(p: NativeParticipant, tail: number): Participant {
  return {
    ...p,
    role: p.role as Participant['role'],
    lag: p.role === 'subscriber' ? Math.max(0, tail - p.cursor) : 0,
  };
}

/** `s` as the public summary. */
export function summaryOf(s: NativeSummary): ChannelSummary {
  return { ...s, participants: s.participants.map((p) => participantOf(p, s.tail)) };
}
