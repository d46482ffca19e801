"""Order placement: exactly-once, group-committed `add`."""
