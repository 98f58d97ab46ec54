-- Automatic certificates (issue 16): the domains switchyard obtains and
-- renews certificates for, the HTTP-01 challenge answers every node serves,
-- and the ACME account key shared by every node. `acme_generation` counts
-- writes to `domains` and `acme_challenges` (NOTIFY switchyard_acme carries
-- it on PostgreSQL). Times are Unix seconds.

INSERT INTO meta (key, value) VALUES ('acme_generation', 0);

CREATE TABLE domains (
    name         TEXT PRIMARY KEY,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'valid', 'failed')),
    created_at   TEXT NOT NULL,
    -- The certificate in force (valid), when it expires and when it renews.
    certificate_id BIGINT,
    not_after    BIGINT,
    renews_at    BIGINT,
    -- The last failure, in words, and when the next order starts.
    error        TEXT,
    retry_at     BIGINT,
    failures     INTEGER NOT NULL DEFAULT 0,
    orders       INTEGER NOT NULL DEFAULT 0,
    -- Which node is ordering, until when (one order per domain at a time).
    lease_owner  TEXT,
    lease_until  BIGINT
);

CREATE TABLE acme_challenges (
    token             TEXT PRIMARY KEY,
    key_authorization TEXT NOT NULL,
    domain            TEXT NOT NULL,
    created_at        BIGINT NOT NULL
);

-- One account per ACME directory; the key sealed like certificate keys.
CREATE TABLE acme_accounts (
    directory  TEXT PRIMARY KEY,
    key_pkcs8  TEXT NOT NULL,
    created_at TEXT NOT NULL
);
