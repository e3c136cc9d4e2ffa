-- migrate:up
-- Principals. A user authenticates with an API key (stored only as its SHA-256: keys are 256-bit
-- random secrets, so a slow hash adds nothing) or, behind an external identity provider, with
-- that provider's tokens, matched on external_subject (the token's `sub`).
CREATE TABLE users (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'annotator', 'machine')),
  api_key_hash bytea,
  external_subject text,
  created_at timestamptz NOT NULL DEFAULT now(),
  disabled_at timestamptz,
  CONSTRAINT users_name_key UNIQUE (name),
  CONSTRAINT users_api_key_hash_key UNIQUE (api_key_hash),
  CONSTRAINT users_external_subject_key UNIQUE (external_subject)
);

-- migrate:down
DROP TABLE users;
