// socket.io event maps shared by the coordinator and the bank agent. Plain interfaces, usable as
// `new Server<ClientToServerEvents, ServerToClientEvents>()` / `io() as Socket<ServerToClientEvents, ClientToServerEvents>`.
// Each direction has one event carrying one encoded Frame; everything else is inside the Frame.

import { DEFAULT_MAX_FRAME_BYTES } from './codec';

export const FRAME_EVENT = 'frame' as const;

export interface FrameEvents {
  /** Node's socket.io delivers a Buffer, which is a Uint8Array. */
  frame: (bytes: Uint8Array) => void;
}

export type ClientToServerEvents = FrameEvents;
export type ServerToClientEvents = FrameEvents;

/** socket.io framing overhead allowance: its own cap must exceed ours so the codec's specific OVERSIZE error wins. */
export const SOCKET_IO_HEADROOM_BYTES = 64 * 1024;

/** maxHttpBufferSize for socket.io's Server given the codec's frame cap. */
export function recommendedMaxHttpBufferSize(maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES): number {
  if (!Number.isSafeInteger(maxFrameBytes) || maxFrameBytes <= 0) throw new RangeError(`maxFrameBytes must be a positive integer (got ${maxFrameBytes})`);
  return maxFrameBytes + SOCKET_IO_HEADROOM_BYTES;
}

export const MAX_HTTP_BUFFER_SIZE = recommendedMaxHttpBufferSize();
