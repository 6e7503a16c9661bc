// Websocket close codes of the hub (docs/protocol.md "Close codes"). The hub closes one connection
// with one of these and a reason in words, logs a line, and keeps serving everyone else.
export const CloseCode = {
  /** A binary frame that is not the message the endpoint takes (malformed, truncated protobuf). */
  MALFORMED: 4000,
  /** A text frame: both endpoints speak binary protobuf only. */
  TEXT_FRAME: 4001,
  /** A frame larger than the endpoint's limit (MAX_CLIENT_FRAME, MAX_AGENT_FRAME). */
  TOO_LARGE: 4002,
  /** Not a valid websocket frame (bad opcode, bad masking, ...). */
  PROTOCOL: 4003,
  /** A subscription the hub cannot take: an unknown pod, code, outcome or node. */
  BAD_SUBSCRIPTION: 4004,
  /** The first frame (Subscribe, AgentHello) did not come in time. */
  NO_FIRST_FRAME: 4005,
  /** A client that stayed behind (its queue full) for too long. */
  TOO_SLOW: 4008,
  /** Another agent connected for the same node: this older connection is replaced. */
  REPLACED: 4009,
  /** An agent stopped answering (no frame, no pong) for too long. */
  SILENT: 4010,
  /** Hop records for a node other than the agent's own. */
  WRONG_NODE: 4011,
} as const;

/** ws closes protocol errors itself with 1002/1007/1009: the hub's contract says 4000-4999. */
export function hubCloseCodeFor(wsCode: number | undefined): number | undefined {
  if (wsCode === 1009) return CloseCode.TOO_LARGE;
  if (wsCode === 1002 || wsCode === 1007) return CloseCode.PROTOCOL;
  return undefined;
}
