// A typed client for the Rounds REST API (`/api/v1`).
//
// Bodies are the types generated from crates/proto, so a change to the wire contract breaks
// the build here rather than at run time. Every failure surfaces as one `ApiError` whose
// message is a sentence a person can act on: the server's problem+json `detail` when there
// is one, otherwise a plain fallback.

import type {
  ChatLog,
  ChatMessage,
  CheckInRequest,
  CreateVisitRequest,
  CreatedVisit,
  DeviceCheck,
  JoinLinkInfo,
  JoinRequest,
  LoginRequest,
  NetworkTestInfo,
  Participant,
  PatientContent,
  PostChatRequest,
  Problem,
  Queue,
  RefreshRequest,
  RoomToken,
  RunningLateRequest,
  SessionResponse,
  SurveyRequest,
  Visit,
  WaitEstimate,
} from "../generated/proto";

export const NETWORK_ERROR_MESSAGE =
  "The server could not be reached. Check your connection and try again.";
export const UNREADABLE_RESPONSE_MESSAGE =
  "The server sent a response that could not be read. Try again in a moment.";

/** A request that did not succeed. */
export class ApiError extends Error {
  override readonly name = "ApiError";
  /** The HTTP status, or 0 when no response arrived. */
  readonly status: number;
  /** The server's `application/problem+json` body, when it sent one. */
  readonly problem: Problem | undefined;

  constructor(message: string, status: number, problem?: Problem, options?: ErrorOptions) {
    super(message, options);
    this.status = status;
    this.problem = problem;
  }
}

export interface RoundsApiOptions {
  /** Where the server is, e.g. `https://rounds.example.org`. Empty means this page's origin. */
  baseUrl?: string;
  /** A clinician access token; sent as `Authorization: Bearer`. */
  accessToken?: string;
}

export class RoundsApi {
  readonly baseUrl: string;
  /** Set by `login` and `refresh`; may also be set directly. */
  accessToken: string | undefined;

  constructor(options: RoundsApiOptions = {}) {
    this.baseUrl = (options.baseUrl ?? "").replace(/\/+$/, "");
    this.accessToken = options.accessToken;
  }

  /** Starts a clinician session and keeps its access token for later calls. */
  async login(email: string, password: string): Promise<SessionResponse> {
    const body: LoginRequest = { email, password };
    const session = await this.request<SessionResponse>("POST", "/api/v1/auth/login", body);
    this.accessToken = session.access_token;
    return session;
  }

  /** Trades a refresh token (single use) for a new session and keeps its access token. */
  async refresh(refresh_token: string): Promise<SessionResponse> {
    const body: RefreshRequest = { refresh_token };
    const session = await this.request<SessionResponse>("POST", "/api/v1/auth/refresh", body);
    this.accessToken = session.access_token;
    return session;
  }

  /** The clinician's queue for `day` (`YYYY-MM-DD`), or for today in the clinic's time zone. */
  queue(day?: string): Promise<Queue> {
    const query = day === undefined ? "" : `?${new URLSearchParams({ day }).toString()}`;
    return this.request<Queue>("GET", `/api/v1/visits${query}`);
  }

  createVisit(req: CreateVisitRequest): Promise<CreatedVisit> {
    return this.request<CreatedVisit>("POST", "/api/v1/visits", req);
  }

  /** Lets a participant out of the lobby and into the visit. */
  admit(visitId: string, participantId: string): Promise<Participant> {
    return this.request<Participant>("POST", path`/api/v1/visits/${visitId}/admit/${participantId}`);
  }

  /** Turns a participant away from the lobby. */
  deny(visitId: string, participantId: string): Promise<Participant> {
    return this.request<Participant>("POST", path`/api/v1/visits/${visitId}/deny/${participantId}`);
  }

  /** What a join link shows before anyone checks in. Needs no session. */
  joinInfo(code: string): Promise<JoinLinkInfo> {
    return this.request<JoinLinkInfo>("GET", path`/api/v1/join/${code}`);
  }

  /** Checks in from a join link; the token admits to the lobby until the clinician admits. */
  join(code: string, req: JoinRequest = {}): Promise<RoomToken> {
    return this.request<RoomToken>("POST", path`/api/v1/join/${code}`, req);
  }

  /** The check-in form and waiting-room content of a link, in `lang`. Needs no session. */
  joinContent(code: string, lang: string): Promise<PatientContent> {
    return this.request<PatientContent>("GET", `${path`/api/v1/join/${code}/content`}?lang=${encodeURIComponent(lang)}`);
  }

  /** Where the network test sends its probes. */
  networkTestInfo(code: string): Promise<NetworkTestInfo> {
    return this.request<NetworkTestInfo>("GET", path`/api/v1/join/${code}/network-test`);
  }

  /** Reports the device and network check (patients; needs a room token). */
  deviceCheck(room: string, check: DeviceCheck): Promise<void> {
    return this.request<void>("POST", path`/api/v1/rooms/${room}/device-check`, check);
  }

  /** Sends the intake answers and the consent agreement (needs a room token). */
  checkIn(room: string, req: CheckInRequest): Promise<void> {
    return this.request<void>("POST", path`/api/v1/rooms/${room}/check-in`, req);
  }

  /** The estimated wait (needs a room token). */
  wait(room: string): Promise<WaitEstimate> {
    return this.request<WaitEstimate>("GET", path`/api/v1/rooms/${room}/wait`);
  }

  /** My own place in the room (needs a room token). */
  me(room: string): Promise<Participant> {
    return this.request<Participant>("GET", path`/api/v1/rooms/${room}/me`);
  }

  /** Leaves the room; the same link can come back. */
  leave(room: string): Promise<Participant> {
    return this.request<Participant>("POST", path`/api/v1/rooms/${room}/leave`);
  }

  chatLog(room: string): Promise<ChatLog> {
    return this.request<ChatLog>("GET", path`/api/v1/rooms/${room}/chat`);
  }

  postChat(room: string, req: PostChatRequest): Promise<ChatMessage> {
    return this.request<ChatMessage>("POST", path`/api/v1/rooms/${room}/chat`, req);
  }

  /** The post-visit survey (needs a room token). */
  survey(room: string, req: SurveyRequest): Promise<void> {
    return this.request<void>("POST", path`/api/v1/rooms/${room}/survey`, req);
  }

  /** Tells the waiting patient the clinician is running late (clinician or host). */
  runningLate(visitId: string, req: RunningLateRequest): Promise<Visit> {
    return this.request<Visit>("POST", path`/api/v1/visits/${visitId}/running-late`, req);
  }

  private async request<T>(method: string, target: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = {
      Accept: "application/json, application/problem+json",
    };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
    }
    if (this.accessToken !== undefined) {
      headers.Authorization = `Bearer ${this.accessToken}`;
    }

    let response: Response;
    try {
      // Looked up on each call, not captured, so tests and polyfills can replace it.
      response = await globalThis.fetch(`${this.baseUrl}${target}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (cause) {
      throw new ApiError(NETWORK_ERROR_MESSAGE, 0, undefined, { cause });
    }

    if (!response.ok) {
      throw await errorFrom(response);
    }
    if (response.status === 204) {
      return undefined as T;
    }
    try {
      return (await response.json()) as T;
    } catch (cause) {
      throw new ApiError(UNREADABLE_RESPONSE_MESSAGE, response.status, undefined, { cause });
    }
  }
}

/** Builds a path, percent-encoding each interpolated value as one segment. */
function path(strings: TemplateStringsArray, ...segments: string[]): string {
  return strings.reduce(
    (out, literal, i) =>
      out + literal + (i < segments.length ? encodeURIComponent(segments[i] ?? "") : ""),
    "",
  );
}

async function errorFrom(response: Response): Promise<ApiError> {
  const problem = await problemFrom(response);
  const message = problem?.detail || problem?.title || fallbackMessage(response.status);
  return new ApiError(message, response.status, problem);
}

async function problemFrom(response: Response): Promise<Problem | undefined> {
  const type = response.headers.get("Content-Type") ?? "";
  if (!type.includes("json")) {
    return undefined;
  }
  try {
    const body: unknown = await response.json();
    return isProblem(body) ? body : undefined;
  } catch {
    return undefined;
  }
}

function isProblem(body: unknown): body is Problem {
  if (typeof body !== "object" || body === null) {
    return false;
  }
  const { detail, title } = body as Record<string, unknown>;
  return typeof detail === "string" || typeof title === "string";
}

function fallbackMessage(status: number): string {
  if (status === 401) {
    return "Your session has ended. Sign in again.";
  }
  if (status === 429) {
    return "Too many requests. Wait a moment and try again.";
  }
  if (status >= 500) {
    return "The server had a problem. Try again in a moment.";
  }
  return `The request was refused (HTTP ${status}).`;
}
