/**
 * ONNX Runtime sessions for the compute kernels: created once per process and execution-provider choice,
 * then shared by every store and every search (a session is safe to run concurrently).
 */
import type * as ort from 'onnxruntime-node';
import { MAXSIM_GROUP, maxSimModel, similarityModel, topKModel } from './graphs.js';
import { createSession, resolveThreads, type ExecutionProvider, type SessionOptions } from './session.js';

/** Provider choice and threads of the kernels; the same options every session of the project takes. */
export type ComputeOptions = SessionOptions;

export interface ComputeSessions {
  readonly provider: ExecutionProvider;
  /** Why CUDA is not used, when a GPU looked available or CUDA was asked for. */
  readonly providerNote: string | undefined;
  readonly threads: number;
  readonly topK: ort.InferenceSession;
  readonly similarity: ort.InferenceSession;
  /** Max and argmax per candidate for `group` candidates a run (a power of two up to MAXSIM_GROUP;
   * graphs.ts maxSimModel), each size's session made on first use; `spinning`: its threads spin between
   * the run's operators (and stop when it returns), which pays on large calls only (max-sim.ts). */
  maxSim(group: number, spinning?: boolean): Promise<ort.InferenceSession>;
}

const cache = new Map<string, Promise<ComputeSessions>>();

/** Sessions for the given options, created on first use and reused for the life of the process. */
export function computeSessions(options: ComputeOptions = {}): Promise<ComputeSessions> {
  const threads = resolveThreads(options.threads);
  const provider = options.provider ?? 'auto';
  const key = `${provider}:${threads}`;
  let sessions = cache.get(key);
  if (!sessions) {
    sessions = createSessions({ provider, threads });
    // A failed creation must not poison the cache (e.g. CUDA asked for before the driver came up).
    sessions.catch(() => cache.delete(key));
    cache.set(key, sessions);
  }
  return sessions;
}

async function createSessions(options: { provider: NonNullable<SessionOptions['provider']>; threads: number }): Promise<ComputeSessions> {
  const topK = await createSession(topKModel(), options);
  // The second graph runs wherever the first one did, so the pair never straddles two providers.
  const similarity = await createSession(similarityModel(), { ...options, provider: topK.provider });
  const maxSimSessions = new Map<string, Promise<ort.InferenceSession>>();
  const maxSim = (group: number, spinning = false): Promise<ort.InferenceSession> => {
    if (!Number.isInteger(group) || group < 1 || group > MAXSIM_GROUP || (group & (group - 1)) !== 0) {
      throw new RangeError(`MaxSim group ${group} is not a power of two up to ${MAXSIM_GROUP}`);
    }
    const key = `${group}:${spinning}`;
    let session = maxSimSessions.get(key);
    if (!session) {
      const sessionOptions = { ...options, provider: topK.provider, spinning: spinning ? ('during-run' as const) : undefined };
      session = createSession(maxSimModel(group), sessionOptions).then((opened) => opened.session);
      session.catch(() => maxSimSessions.delete(key));
      maxSimSessions.set(key, session);
    }
    return session;
  };
  return { provider: topK.provider, providerNote: topK.providerNote, threads: options.threads, topK: topK.session, similarity: similarity.session, maxSim };
}
