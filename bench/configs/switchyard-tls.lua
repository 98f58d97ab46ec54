-- switchyard for the HTTPS benchmark (bench/tls.sh): the three backend
-- ports, access log off (off for every target), the HTTPS listener; the
-- certificate is uploaded through the admin API. wrk sends no usable SNI
-- (an IP address), so the default certificate answers it, as nginx's and
-- HAProxy's one certificate does.
return {
  listen = "127.0.0.1:19401",
  backends = { "127.0.0.1:19101", "127.0.0.1:19102", "127.0.0.1:19103" },
  access_log = { enabled = false },
  tls = { listen = "127.0.0.1:19411", default_certificate = "site1.example" },
}
