/**
 * The page's side of the HTTP API: the token (from the URL fragment the server prints, or typed in,
 * kept in sessionStorage so it dies with the tab), JSON calls, and pictures fetched with the token and
 * shown through blob URLs (an <img src> cannot send an Authorization header, and a token in a URL
 * would end up in logs and history).
 */

export interface IndexInfo {
  encoderId: string;
  dim: number;
  volumes: number;
  slices: number;
  methods: string[];
  windows: string[];
  canEmbedUploads: boolean;
  limits: { maxUploadBytes: number };
}

export interface VolumeInfo {
  volumeId: string;
  dims: [number, number, number];
  spacingMm: [number, number, number];
  affineRas: number[];
  zRangeMm: [number, number];
  modality: string;
  bodyPart?: string;
  labels: Record<string, string | number>;
  embeddedSlices: number;
}

export interface UploadInfo {
  uploadId: string;
  dims: [number, number, number];
  spacingMm: [number, number, number];
  affineRas: number[];
  zRangeMm: [number, number];
  modality: string;
  indexedAs?: string;
}

export interface SliceMatch {
  querySlice: number;
  targetSlice: number;
  similarity: number;
}

export interface SearchResultInfo {
  rank: number;
  volumeId: string;
  score: number;
  region?: { firstSlice: number; lastSlice: number; zStartMm: number; zEndMm: number };
  middleMatch?: SliceMatch;
  matchCount: number;
  labels: Record<string, string | number>;
  dims: [number, number, number];
  spacingMm: [number, number, number];
  modality: string;
}

export interface SearchResponse {
  query: { volumeId?: string; uploadId?: string; sliceCount: number; firstSlice: number; lastSlice: number; zStartMm?: number; zEndMm?: number; reusedStoredVectors: boolean };
  options: Record<string, string | number>;
  timings: { queryMs: number; searchMs: number };
  results: SearchResultInfo[];
}

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
    const body = (await response.json()) as { error?: { code?: string; message?: string } };
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

export function postJson<T>(path: string, body: unknown): Promise<T> {
  return call<T>(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
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
