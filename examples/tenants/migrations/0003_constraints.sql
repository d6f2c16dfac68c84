-- An audit table, and one e-mail address per contact.
-- The unique index fails on a tenant whose contacts share an address: that
-- tenant is restored from its snapshot and reported; deduplicate, re-run.

-- jobd:step create_audit_log
CREATE TABLE audit_log (
    id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    happened_at DATETIME(6) NOT NULL,
    actor VARCHAR(100) NOT NULL,
    action VARCHAR(64) NOT NULL,
    KEY audit_time (happened_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- jobd:step add_contacts_email_unique
ALTER TABLE contacts ADD UNIQUE INDEX contacts_email (email);
