-- No index on the provider's message id. Nothing looks a message up by it: a delivery report
-- names our message by the reference we sent with it (the message's id, the primary key), and the
-- provider id is then checked against the row. The index cost one insert of a random key for every
-- message the provider accepted, inside the outcome transaction every send loop waits on.
DROP INDEX messages_provider_id;
