-- TLS certificates (issue 15): PEM chain and private key per row, shared by
-- every node. The key is stored sealed (AES-256-GCM, `sealed:v1:...`) when
-- the node that stored it had a storage key, else as PEM. Rows are never
-- changed, only inserted and deleted; `cert_generation` counts those writes
-- (NOTIFY switchyard_certificates carries it on PostgreSQL).

INSERT INTO meta (key, value) VALUES ('cert_generation', 0);
INSERT INTO meta (key, value) VALUES ('next_cert_id', 0);

CREATE TABLE certificates (
    id         BIGINT PRIMARY KEY,
    chain_pem  TEXT NOT NULL,
    key_pem    TEXT NOT NULL,
    source     TEXT NOT NULL CHECK (source IN ('uploaded', 'acme')),
    created_at TEXT NOT NULL
);
