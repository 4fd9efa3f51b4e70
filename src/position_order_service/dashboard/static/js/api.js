// The REST API as the page uses it: the token from session storage as a bearer header on every request, and
// an API error turned into the API's own message (never a blank page).

const TOKEN_KEY = "position-order-service.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// FastAPI's {"detail": "..."} or {"detail": [{"loc": [...], "msg": "..."}]} as one line
export function errorMessage(body, status, statusText) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((e) => {
        const loc = (e.loc || []).filter((p) => p !== "body" && p !== "query" && p !== "path").join(".");
        return loc ? `${loc}: ${e.msg}` : e.msg;
      })
      .join("; ");
  }
  if (detail) return JSON.stringify(detail);
  return `${status} ${statusText || "error"}`;
}

export async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const t = token.get();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "the service cannot be reached");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) throw new ApiError(response.status, errorMessage(data, response.status, response.statusText));
  return data;
}

export const enc = encodeURIComponent;
