// The page's two HTTP requests to its hub (same origin): the node map and the pcapng of the paths in view.
import { authHeaders, type HubAccess } from './connection.js';
import { decodeNodeMap, pcapngRequest, type NodeMapMessage } from './wire.js';

export async function fetchNodeMap(access: HubAccess): Promise<NodeMapMessage> {
  const r = await fetch('/v1/nodes', { headers: authHeaders(access), cache: 'no-store' });
  if (!r.ok) throw new Error(`the hub answered ${r.status} for its node map: ${(await r.text()).trim()}`);
  return decodeNodeMap(new Uint8Array(await r.arrayBuffer()));
}

export interface Download {
  file: string;
  bytes: number;
  /** "12/12": paths the hub still held of those asked for. */
  held: string;
}

/** Asks the hub for a pcapng of these paths and saves it (the browser's download). */
export async function downloadPcapng(access: HubAccess, fingerprints: readonly string[]): Promise<Download> {
  const r = await fetch('/v1/pcapng', {
    method: 'POST',
    headers: { ...authHeaders(access), 'Content-Type': 'application/x-protobuf' },
    body: pcapngRequest(fingerprints) as Uint8Array<ArrayBuffer>,
    cache: 'no-store',
  });
  if (!r.ok) throw new Error((await r.text()).trim() || `the hub answered ${r.status}`);
  const file = /filename="([^"]+)"/.exec(r.headers.get('Content-Disposition') ?? '')?.[1] ?? 'vxtrace.pcapng';
  const blob = await r.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = file;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return { file, bytes: blob.size, held: r.headers.get('X-Vxtrace-Paths') ?? '' };
}
