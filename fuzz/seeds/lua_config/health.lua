return {
  database = "postgres://sy:s3cret@db/sy?password=x",
  health = { passive = { failure_statuses = { 502, 503 } } },
  access_log = { enabled = true, sample = 0.5 },
  proxy_protocol = { enabled = true, trusted = { "192.0.2.0/24" } },
  metrics_listen = "127.0.0.1:9100",
  workers = 2,
}
