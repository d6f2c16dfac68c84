-- Orders carry their currency; "new" becomes "open".

-- jobd:step add_orders_currency
ALTER TABLE orders ADD COLUMN currency CHAR(3) NOT NULL DEFAULT 'EUR';

-- jobd:step rename_new_status
UPDATE orders SET status = 'open' WHERE status = 'new';
