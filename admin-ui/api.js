// The admin API, as the page uses it: every call carries the token; errors
// become ApiError with the API's code and message (status 0: no answer).

// A read that hangs (a stopped server, a black-holed network) must fail,
// or the page would go on showing old numbers as if they were current.
// Writes get no timeout: giving up would not undo them.
const READ_TIMEOUT_MS = 8_000;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async request(method, path, body) {
    const headers = { Authorization: `Bearer ${this.token}` };
    const init = { method, headers, cache: "no-store" };
    if (method === "GET") init.signal = AbortSignal.timeout(READ_TIMEOUT_MS);
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      if (err.name === "TimeoutError") {
        throw new ApiError(0, "timeout", `switchyard did not answer within ${READ_TIMEOUT_MS / 1000} s`);
      }
      throw new ApiError(0, "unreachable", "switchyard did not answer; is it running?");
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = data && data.error;
      throw new ApiError(
        response.status,
        error ? error.code : "http_" + response.status,
        error ? error.message : `switchyard answered ${response.status}`,
      );
    }
    return data;
  }

  backends() { return this.request("GET", "/api/v1/backends"); }
  stats() { return this.request("GET", "/api/v1/stats"); }
  history() { return this.request("GET", "/api/v1/stats/history"); }
  changes(limit = 50) { return this.request("GET", `/api/v1/changes?limit=${limit}`); }
  add(address, weight) { return this.request("POST", "/api/v1/backends", { address, weight }); }
  patch(id, change) { return this.request("PATCH", `/api/v1/backends/${encodeURIComponent(id)}`, change); }
  remove(id) { return this.request("DELETE", `/api/v1/backends/${encodeURIComponent(id)}`); }
  certificates() { return this.request("GET", "/api/v1/certificates"); }
  addCertificate(certificate, privateKey) {
    return this.request("POST", "/api/v1/certificates", { certificate, private_key: privateKey });
  }
  deleteCertificate(id) { return this.request("DELETE", `/api/v1/certificates/${encodeURIComponent(id)}`); }
  domains() { return this.request("GET", "/api/v1/domains"); }
  addDomain(name) { return this.request("POST", "/api/v1/domains", { name }); }
  deleteDomain(name) { return this.request("DELETE", `/api/v1/domains/${encodeURIComponent(name)}`); }
  route(host, path) {
    const query = new URLSearchParams({ host, path });
    return this.request("GET", `/api/v1/route?${query}`);
  }
}
