DROP TABLE audit_verification_runs;
