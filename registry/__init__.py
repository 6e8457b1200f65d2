"""Model registration, the promotion gate, rollback and the audit trail."""
