// The one client of the REST API: the generated SDK, authenticated with the key of this tab.
// The key lives in sessionStorage only: never in a URL, never logged.
import type { Problem } from '@repic/client';
import { createClient } from '@repic/client/client';

const KEY = 'repic.apiKey';

export const client = createClient({
  baseUrl: window.location.origin,
  auth: () => sessionStorage.getItem(KEY) ?? undefined,
});

export function signedIn(): boolean {
  return sessionStorage.getItem(KEY) !== null;
}

export function signIn(key: string): void {
  sessionStorage.setItem(KEY, key);
}

export function signOut(): void {
  sessionStorage.removeItem(KEY);
}

/** Thrown for a non-2xx answer: the problem body when there is one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Partial<Problem>,
  ) {
    super(problem.detail ?? problem.title ?? `HTTP ${status}`);
  }
}

type Result<T> = { data?: T; error?: unknown; response?: Response };

/** The data of an SDK call, or an ApiError carrying the problem's detail. */
export async function call<T>(pending: Promise<Result<T>>): Promise<T> {
  let result: Result<T>;
  try {
    result = await pending;
  } catch (cause) {
    throw new ApiError(0, { title: 'Network error', detail: `The service did not answer (${String(cause)}).` });
  }
  const status = result.response?.status ?? 0;
  if (result.response?.ok) return result.data as T;
  const body = result.error;
  const problem: Partial<Problem> =
    body && typeof body === 'object' ? (body as Partial<Problem>) : { detail: String(body ?? '') };
  const error = new ApiError(status, problem);
  if (status === 401) window.dispatchEvent(new CustomEvent('repic:unauthorized', { detail: error.message }));
  throw error;
}
