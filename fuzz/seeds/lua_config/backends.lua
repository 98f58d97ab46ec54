local backends = {}
for i = 1, 3 do
  table.insert(backends, { address = "10.0.0." .. i .. ":8000", weight = i })
end
backends[#backends + 1] = "App-4.Internal:80"
return {
  backends = backends,
  reload = { control_hosts = { "Control.Example" } },
  trusted_proxies = { "10.0.0.0/8", "::1" },
  timeouts = { connect = 1.5, body_idle = 30 },
  admin = { token = "a-token-of-twenty-chars", allowed_origins = { "https://Admin.Example:443/" } },
}
