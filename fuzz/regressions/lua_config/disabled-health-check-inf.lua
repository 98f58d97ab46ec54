return { health = { passive = { enabled = false, cooldown = 1/0 } } }
