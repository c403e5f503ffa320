import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";

import type { Problem, Queue, SessionResponse } from "../generated/proto";
import { ApiError, NETWORK_ERROR_MESSAGE, RoundsApi, UNREADABLE_RESPONSE_MESSAGE } from "./client";

const fetchMock = vi.fn<typeof fetch>();

beforeEach(() => {
  vi.stubGlobal("fetch", fetchMock);
});

afterEach(() => {
  vi.unstubAllGlobals();
  fetchMock.mockReset();
});

function json(body: unknown, status = 200, type = "application/json"): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": type } });
}

interface Sent {
  url: string;
  method: string;
  headers: Headers;
  body: unknown;
}

/** Every call made to fetch, in order. */
function calls(): Sent[] {
  return fetchMock.mock.calls.map(([input, init]) => {
    const raw = init?.body;
    return {
      url: typeof input === "string" ? input : input instanceof URL ? input.href : input.url,
      method: init?.method ?? "GET",
      headers: new Headers(init?.headers),
      body: typeof raw === "string" ? (JSON.parse(raw) as unknown) : raw,
    };
  });
}

/** The one call made to fetch. */
function sent(): Sent {
  const all = calls();
  expect(all).toHaveLength(1);
  return all[0] as Sent;
}

async function caught(promise: Promise<unknown>): Promise<ApiError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

const session: SessionResponse = {
  access_token: "access-1",
  token_type: "Bearer",
  expires_in: 900,
  refresh_token: "refresh-1",
  refresh_expires_in: 43200,
  clinician: {
    id: "c1",
    clinic_id: "k1",
    clinic_name: "Riverside Clinic",
    email: "dr.lee@example.org",
    display_name: "Dr Lee",
  },
};

describe("RoundsApi", () => {
  it("parses a successful response", async () => {
    const queue: Queue = { day: "2025-03-04", time_zone: "Europe/Paris", visits: [] };
    fetchMock.mockResolvedValue(json(queue));

    const api = new RoundsApi({ baseUrl: "https://rounds.example.org/" });
    await expect(api.queue("2025-03-04")).resolves.toEqual(queue);

    const req = sent();
    expect(req.method).toBe("GET");
    expect(req.url).toBe("https://rounds.example.org/api/v1/visits?day=2025-03-04");
    expect(req.body).toBeUndefined();
  });

  it("asks for today's queue without a day parameter", async () => {
    fetchMock.mockResolvedValue(json({ day: "2025-03-04", time_zone: "UTC", visits: [] }));
    await new RoundsApi().queue();
    expect(sent().url).toBe("/api/v1/visits");
  });

  it("logs in with a JSON body and keeps the access token", async () => {
    fetchMock.mockResolvedValue(json(session));

    const api = new RoundsApi();
    await expect(api.login("dr.lee@example.org", "pw")).resolves.toEqual(session);

    const req = sent();
    expect(req.method).toBe("POST");
    expect(req.url).toBe("/api/v1/auth/login");
    expect(req.headers.get("Content-Type")).toBe("application/json");
    expect(req.headers.get("Authorization")).toBeNull();
    expect(req.body).toEqual({ email: "dr.lee@example.org", password: "pw" });
    expect(api.accessToken).toBe("access-1");
  });

  it("sends the access token as a bearer token", async () => {
    fetchMock.mockResolvedValue(json(session));

    await new RoundsApi({ accessToken: "tok-123" }).refresh("refresh-1");

    const req = sent();
    expect(req.url).toBe("/api/v1/auth/refresh");
    expect(req.headers.get("Authorization")).toBe("Bearer tok-123");
    expect(req.body).toEqual({ refresh_token: "refresh-1" });
  });

  it("encodes path segments", async () => {
    fetchMock.mockResolvedValue(json({}));

    await new RoundsApi().admit("visit/1", "p?x#y z");

    expect(sent().url).toBe("/api/v1/visits/visit%2F1/admit/p%3Fx%23y%20z");
  });

  it("uses the documented paths for deny and join", async () => {
    fetchMock.mockImplementation(() => Promise.resolve(json({})));
    const api = new RoundsApi();

    await api.deny("v1", "p1");
    await api.joinInfo("abc/..");
    await api.join("abc", { display_name: "Sam" });

    expect(calls().map(({ method, url, body }) => [method, url, body])).toEqual([
      ["POST", "/api/v1/visits/v1/deny/p1", undefined],
      ["GET", "/api/v1/join/abc%2F..", undefined],
      ["POST", "/api/v1/join/abc", { display_name: "Sam" }],
    ]);
  });

  it("turns a problem+json response into an ApiError with its detail", async () => {
    const problem: Problem = {
      type: "https://rounds.health/problems/expired-link",
      title: "Expired link",
      status: 410,
      detail: "This link has expired. Ask the clinic to send a new one.",
      request_id: "req-42",
    };
    fetchMock.mockResolvedValue(json(problem, 410, "application/problem+json"));

    const error = await caught(new RoundsApi().joinInfo("old"));

    expect(error.status).toBe(410);
    expect(error.message).toBe(problem.detail);
    expect(error.problem).toEqual(problem);
  });

  it("falls back to a plain sentence when the error body is not a problem", async () => {
    fetchMock.mockResolvedValue(
      new Response("<html>Bad gateway</html>", {
        status: 502,
        headers: { "Content-Type": "text/html" },
      }),
    );

    const error = await caught(new RoundsApi().queue());

    expect(error.status).toBe(502);
    expect(error.problem).toBeUndefined();
    expect(error.message).toBe("The server had a problem. Try again in a moment.");
  });

  it("gives a friendly message when the server cannot be reached", async () => {
    const cause = new TypeError("fetch failed");
    fetchMock.mockRejectedValue(cause);

    const error = await caught(new RoundsApi().login("a@example.org", "pw"));

    expect(error.status).toBe(0);
    expect(error.problem).toBeUndefined();
    expect(error.message).toBe(NETWORK_ERROR_MESSAGE);
    expect(error.cause).toBe(cause);
  });

  it("reports a successful response it cannot read", async () => {
    fetchMock.mockResolvedValue(new Response("not json", { status: 200 }));

    const error = await caught(new RoundsApi().queue());

    expect(error.status).toBe(200);
    expect(error.message).toBe(UNREADABLE_RESPONSE_MESSAGE);
  });
});
