/**
 * The page's side of the HTTP API: the token (from the URL fragment the server prints, or typed in,
 * kept in sessionStorage so it dies with the tab), JSON calls, and pictures fetched with the token and
 * shown through blob URLs (an <img src> cannot send an Authorization header, and a token in a URL
 * would end up in logs and history).
 */

export type {
  ApiSearchResult as SearchResultInfo,
  IndexInfo,
  PublicUpload as UploadInfo,
  PublicVolume as VolumeInfo,
  SearchBody,
  SearchResponse,
  SliceMatchInfo as SliceMatch,
  VolumeList,
  WindowPreset,
} from '../api/contract.js';
import type { ApiErrorBody } from '../api/contract.js';

export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const TOKEN_KEY = 'mir3d-token';

/** Takes `#token=…` out of the address bar (so it is neither bookmarked nor left in history) into
 * sessionStorage; returns the token to use, if any. */
export function takeToken(): string | undefined {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, '', window.location.pathname + window.location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function saveToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

let onUnauthorized: () => void = () => undefined;

export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

export function authHeaders(): Record<string, string> {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function failure(response: Response): Promise<ApiCallError> {
  let code = `HTTP_${response.status}`;
  let message = response.statusText || 'request failed';
  try {
    const body = (await response.json()) as Partial<ApiErrorBody>;
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch {
    // Not JSON (a proxy's error page): keep the status line.
  }
  if (response.status === 401) onUnauthorized();
  return new ApiCallError(response.status, code, message);
}

export async function call<T>(path: string, init: RequestInit = {}): Promise<T> {
  const response = await fetch(path, { ...init, headers: { ...authHeaders(), ...(init.headers as Record<string, string> | undefined) } });
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export function postJson<T>(path: string, body: unknown, signal?: AbortSignal): Promise<T> {
  return call<T>(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), ...(signal ? { signal } : {}) });
}

/** True for the rejection of a request the user cancelled. */
export function isAbort(error: unknown): boolean {
  return error instanceof DOMException && error.name === 'AbortError';
}

/** POSTs a file as multipart with upload progress (fetch cannot report it; XMLHttpRequest can). */
export function uploadWithProgress<T>(path: string, file: File, onProgress: (sentFraction: number) => void, signal?: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open('POST', path);
    for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
    request.responseType = 'text';
    request.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / Math.max(1, event.total));
    };
    request.upload.onload = () => onProgress(1);
    request.onerror = () => reject(new ApiCallError(0, 'NETWORK', 'the upload did not reach the server'));
    request.onabort = () => reject(new DOMException('upload cancelled', 'AbortError'));
    request.onload = () => {
      const response = new Response(request.responseText, { status: request.status, statusText: request.statusText, headers: { 'content-type': 'application/json' } });
      if (request.status >= 200 && request.status < 300) resolve(JSON.parse(request.responseText) as T);
      else void failure(response).then(reject);
    };
    signal?.addEventListener('abort', () => request.abort(), { once: true });
    const form = new FormData();
    form.append('file', file);
    request.send(form);
  });
}

/** Blob URLs of fetched pictures, kept for reuse and revoked when too many pile up. */
const pictures = new Map<string, Promise<string>>();
const MAX_PICTURES = 300;

export function picture(path: string): Promise<string> {
  const cached = pictures.get(path);
  if (cached) {
    pictures.delete(path);
    pictures.set(path, cached);
    return cached;
  }
  const loading = (async () => {
    const response = await fetch(path, { headers: authHeaders() });
    if (!response.ok) throw await failure(response);
    return URL.createObjectURL(await response.blob());
  })();
  loading.catch(() => pictures.delete(path));
  pictures.set(path, loading);
  while (pictures.size > MAX_PICTURES) {
    const [oldest, url] = pictures.entries().next().value as [string, Promise<string>];
    pictures.delete(oldest);
    url.then((u) => URL.revokeObjectURL(u), () => undefined);
  }
  return loading;
}

export function query(params: Record<string, string | number | boolean | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== '') search.set(key, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}
