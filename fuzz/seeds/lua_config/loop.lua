local n = 0
while true do n = n + 1 end
return { listen = "127.0.0.1:9090" }
