-- The sealer's worklist of audit ids it found missing below rows it chained: transactions still
-- open at that moment (their row commits later and is chained then) or rolled back (never will;
-- forgotten after an hour). Lets the sealer find late rows by primary key instead of comparing
-- a window of the journal with the chain (an anti-join of 100,000 rows every few seconds).
-- A worklist, not audit data: only the sealer reads and writes it.

CREATE TABLE audit.lacune (
    journal_id bigint PRIMARY KEY,
    vue_le     timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, DELETE ON audit.lacune TO vd_audit_sealer;

-- Rows below the highest sealed one that are not chained yet (committed late, before this
-- table existed): the sealer chains them on its next round.
INSERT INTO audit.lacune (journal_id)
SELECT j.id FROM audit.journal j
 WHERE j.id < (SELECT coalesce(max(journal_id), 0) FROM audit.sceau)
   AND NOT EXISTS (SELECT 1 FROM audit.sceau s WHERE s.journal_id = j.id);
