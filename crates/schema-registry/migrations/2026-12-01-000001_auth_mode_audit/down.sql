DROP TABLE audit_log;
DROP TABLE registry_mode;
