import { PNG } from 'pngjs';

/** Small helpers for tests that talk to a server over real HTTP. */

export interface JsonReply<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

export interface ErrorBody {
  error: { code: string; message: string };
}

export async function jsonRequest<T = unknown>(url: string, init: RequestInit = {}): Promise<JsonReply<T>> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    throw new Error(`${init.method ?? 'GET'} ${url}: ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: response.status, headers: response.headers, body: body as T };
}

export function bearer(token: string): Record<string, string> {
  return { Authorization: `Bearer ${token}` };
}

/** Width, height and RGBA pixels of a PNG; throws unless the bytes are one. */
export function readPng(bytes: Uint8Array): { width: number; height: number; data: Buffer } {
  const png = PNG.sync.read(Buffer.from(bytes));
  return { width: png.width, height: png.height, data: png.data };
}
