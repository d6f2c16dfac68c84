-- Contacts get a phone number and a lookup index on their name.

-- jobd:step add_contacts_phone
ALTER TABLE contacts ADD COLUMN phone VARCHAR(32) NULL AFTER name;

-- jobd:step add_contacts_name_index
CREATE INDEX contacts_name ON contacts (name);
