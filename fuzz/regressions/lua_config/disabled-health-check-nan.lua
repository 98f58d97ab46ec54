return { health = { active = { interval = 0/0 } } }
