return {
  listen = "127.0.0.1:9090",
  limits = { max_header_bytes = 65536, max_conections = 10 },
}
