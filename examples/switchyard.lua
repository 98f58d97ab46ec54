-- switchyard configuration: a Lua 5.4 chunk that returns a table.
-- Every key is optional; the values shown are the defaults unless noted.
local backend_port = tonumber(os.getenv("BACKEND_PORT") or "9001")

local backends = {}
for i = 0, 2 do
  -- Plain "host:port" strings have weight 1 ...
  backends[#backends + 1] = string.format("127.0.0.1:%d", backend_port + i)
end
-- ... tables set a weight (1 to 1000).
backends[#backends + 1] = { address = "127.0.0.1:9010", weight = 2 }

return {
  listen = "127.0.0.1:8080",        -- proxy listener
  database = "sqlite://switchyard.db", -- or "postgres://user@host/db" (with --demo the
                                    -- default is "sqlite://switchyard-demo.db")
  workers = nil,                    -- proxy worker threads (nil: one per core)
  log_format = "text",              -- "text" or "json"
  backends = backends,              -- seeds an empty store (plus any --backend flags);
                                    -- after that the store wins (--replace-backends
                                    -- or PUT /api/v1/backends to apply a change)
  metrics_listen = nil,             -- e.g. "0.0.0.0:9464": /metrics alone, without a token

  admin = {
    listen = "127.0.0.1:8081",      -- admin API and UI
    -- The bearer token: set one of these, or leave both nil to have one
    -- generated next to the database (needed when listen is not loopback).
    token = os.getenv("SWITCHYARD_EXAMPLE_TOKEN"),
    token_file = nil,
    -- A read-only token: every GET and /metrics, no changes (403). At least
    -- 16 characters, different from the admin token.
    read_token = nil,
    -- Browser origins besides the listener's own that may use the API,
    -- e.g. { "https://admin.example.com" } for the UI behind an HTTPS proxy.
    allowed_origins = {},
    -- Names, besides IP addresses and localhost, that requests to the admin
    -- and metrics listeners may carry in Host (against DNS rebinding),
    -- e.g. { "admin.example.com" } when you reach them by that name.
    allowed_hosts = {},
  },

  reload = {
    -- Empty: /user/<name>/webapps/<domain>/reload routes by <domain> on any host.
    -- Non-empty: only on these hosts.
    control_hosts = { "www.pythonanywhere.com" },
  },
  trusted_proxies = { "127.0.0.1", "10.0.0.0/8" }, -- their X-Forwarded-* are kept
  forward_underscore_headers = false,              -- drop headers named like X_Foo
  upgrade_protocols = { "websocket" },             -- what Upgrade may tunnel (never h2c)
  proxy_protocol = {                -- PROXY protocol v1/v2 from TCP balancers (off by default)
    enabled = false,
    -- The balancers: their connections must start with a header naming the
    -- client; a header from anyone else closes the connection.
    trusted = {},                   -- e.g. { "10.0.0.0/8" }
  },

  timeouts = {                      -- seconds (fractions allowed)
    header_read = 10,               -- whole request head (and PROXY header), else the connection closes
    idle = 60,                      -- idle keep-alive client connection
    connect = 2,                    -- connecting to a backend
    response_header = 60,           -- backend response head after the request body, else 504
    backend_idle = 30,              -- idle pooled backend connection
    shutdown_grace = 30,            -- in-flight requests on SIGTERM/SIGINT
    drain = 300,                    -- open requests/WebSockets on a drained backend, then closed
    body_idle = 60,                 -- a request body with no byte this long: 408, closed
    tunnel_idle = 3600,             -- a WebSocket with no byte either way this long: closed
    send_idle = 60,                 -- a client that reads nothing this long: disconnected
    response_body_idle = 300,       -- a backend body with no byte this long: cut off
  },
  limits = {
    max_header_bytes = 65536,       -- request line + headers, else 431
    max_body_bytes = nil,           -- request body, else 413 (nil: unlimited)
    max_connections = 10000,        -- open client connections
    h2_max_streams = 100,           -- concurrent HTTP/2 streams per connection
    min_body_rate = 500,            -- bytes/s a request body must keep up (0: none)
    backend_recv_buffer = 262144,   -- SO_RCVBUF of backend connections (0: kernel)
    client_send_buffer = 0,         -- SO_SNDBUF of client connections (0: kernel)
    client_unsent_buffer = 131072,  -- unsent bytes a client socket holds (0: system default)
  },
  failover = {
    tries = 2,                      -- candidates tried when connecting fails
  },
  health = {
    active = {                      -- periodic GET to every backend (off by default)
      enabled = true,               -- (this example turns it on)
      path = "/healthz",
      host = nil,                   -- Host header sent (nil: the backend's address)
      interval = 5,                 -- seconds between checks of one backend
      timeout = 2,                  -- seconds per check
      healthy_threshold = 1,        -- passes in a row that bring back a backend checks took down
      unhealthy_threshold = 3,      -- failures in a row that take it down
      expect_status = { 200, 399 }, -- passing statuses (inclusive)
    },
    passive = {                     -- real requests are evidence
      enabled = true,
      failures = 5,                 -- backend failures in a row (connect, closed, invalid or
                                    -- late response, failure_statuses) that take it down
      cooldown = 10,                -- seconds between trial requests while it is down
      failure_statuses = {},        -- statuses that count too; none by default, since on a
                                    -- shared backend a 502/503 comes from one user's app
    },
  },
  access_log = {
    enabled = true,                 -- one line per request, target switchyard::access
    sample = 1.0,                   -- share of requests logged (exact, no randomness)
  },
}
