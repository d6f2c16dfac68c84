-- The structure every demo tenant starts from (before any migration).
CREATE TABLE contacts (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(190) NOT NULL,
    name VARCHAR(100) NOT NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE orders (
    id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    contact_id INT UNSIGNED NOT NULL,
    total_cents INT NOT NULL,
    status VARCHAR(16) NOT NULL DEFAULT 'new',
    note VARCHAR(255) NULL,
    KEY orders_contact (contact_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
