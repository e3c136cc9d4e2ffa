-- migrate:up
-- The lease list an image keeps when a statement writes it: the live leases and the expired
-- leases of claims still active (their holders may renew while a slot is free), but not
-- `except_claim`'s (the writer's own, replaced or ended) nor those of the claims in `ended`
-- (ended by the calling statement, which its snapshot still shows active). So an expired lease
-- stays listed until its claim ends or a claim leaves it no slot (the claim statements then keep
-- only the live ones and end what taken_over_claims can lock): pruned on every write, it was lost
-- when another holder wrote first (k >= 2), and the claim that filled the image could not end it.
-- An expired lease whose claim ends without its image being written (its holder's next claim
-- ends it after an admin's correction filled the image) stays listed until the image's next
-- write; being expired, it counts nowhere. current_claims is probed by key only for an expired
-- lease: a list of live leases costs what live_leases does.
CREATE FUNCTION kept_leases(dataset_id bigint, leases lease[], except_claim bigint,
  ended bigint[])
RETURNS lease[]
LANGUAGE plpgsql STABLE PARALLEL SAFE
AS $$
DECLARE
  l lease;
  kept lease[] := '{}';
BEGIN
  IF leases IS NOT NULL THEN
    FOREACH l IN ARRAY leases LOOP
      CONTINUE WHEN l.claim_id IS NOT DISTINCT FROM except_claim;
      IF l.expires_at > now() THEN
        kept := kept || l;
      ELSIF (ended IS NULL OR l.claim_id <> ALL (ended)) AND EXISTS (
        SELECT FROM current_claims c
        WHERE c.user_id = l.user_id AND c.dataset_id = kept_leases.dataset_id
          AND c.claim_id = l.claim_id AND c.active
      ) THEN
        kept := kept || l;
      END IF;
    END LOOP;
  END IF;
  RETURN kept;
END
$$;

-- migrate:down
DROP FUNCTION kept_leases(bigint, lease[], bigint, bigint[]);
