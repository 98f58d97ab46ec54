-- switchyard for the benchmark: the three backend ports, access log off
-- (off for every target), defaults otherwise.
return {
  listen = "127.0.0.1:19401",
  backends = { "127.0.0.1:19101", "127.0.0.1:19102", "127.0.0.1:19103" },
  access_log = { enabled = false },
  -- Plain HTTP only: a second switchyard (BEFORE=) runs beside this one
  -- and the default HTTPS port would clash (bench/tls.sh measures HTTPS).
  tls = { listen = false },
}
