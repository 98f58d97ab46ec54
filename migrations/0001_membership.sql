-- Backend membership, its generation counter and a change log.
-- One dialect for SQLite and PostgreSQL: ids and generations are assigned
-- from the `meta` counters inside each write transaction (no SERIAL or
-- AUTOINCREMENT, whose syntax differs).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('generation', 0);
INSERT INTO meta (key, value) VALUES ('next_id', 0);

CREATE TABLE backends (
    id         BIGINT PRIMARY KEY,
    address    TEXT NOT NULL UNIQUE,
    weight     INTEGER NOT NULL CHECK (weight BETWEEN 1 AND 1000),
    state      TEXT NOT NULL CHECK (state IN ('active', 'draining')),
    created_at TEXT NOT NULL
);

CREATE TABLE changes (
    generation BIGINT NOT NULL,
    seq        INTEGER NOT NULL,
    at         TEXT NOT NULL,
    action     TEXT NOT NULL,
    backend_id BIGINT NOT NULL,
    address    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    PRIMARY KEY (generation, seq)
);
